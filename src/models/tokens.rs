//! The token layout of one forward pass: ids, positions and the padding mask,
//! and the one padding mechanism every batch goes through (left for
//! generation prompts, right for training rows).

use anyhow::{ensure, Result};

/// The tokens of one forward pass: B sequences of T new tokens each.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub batch: usize,
    pub seq: usize,
    /// [B·T] token ids (pads included).
    pub ids: Vec<i32>,
    /// [B·T] position of each token, counting real tokens only, so a
    /// left-padded sequence starts at 0 like transformers' `cumsum(mask) - 1`.
    pub positions: Vec<i32>,
    /// [B·T] 1 for real tokens, 0 for pads.
    pub mask: Vec<i32>,
}

/// Which end of a row the pads go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadSide {
    /// Every row ends at the last column, where generation appends tokens.
    Left,
    /// Real tokens from column 0, so each row's predictions line up with its
    /// targets (training).
    Right,
}

impl Tokens {
    /// Unpadded sequences of equal length.
    pub fn new(ids: Vec<i32>, batch: usize) -> Result<Tokens> {
        ensure!(
            batch > 0 && ids.len().is_multiple_of(batch),
            "{} ids do not split into {batch} sequences",
            ids.len()
        );
        let seq = ids.len() / batch;
        let positions = (0..ids.len()).map(|i| (i % seq) as i32).collect();
        Ok(Tokens {
            batch,
            seq,
            mask: vec![1; ids.len()],
            ids,
            positions,
        })
    }

    /// Sequences of different lengths, padded with `pad` to the longest on
    /// `side`. Positions count real tokens from 0; pads get position 0.
    pub fn padded(seqs: &[Vec<i32>], pad: i32, side: PadSide) -> Result<Tokens> {
        ensure!(!seqs.is_empty(), "no sequences");
        let seq = seqs.iter().map(Vec::len).max().unwrap_or(0);
        ensure!(seq > 0, "every sequence is empty");
        let (mut ids, mut positions, mut mask) = (Vec::new(), Vec::new(), Vec::new());
        for s in seqs {
            let pads = seq - s.len();
            let row_ids = s.iter().copied();
            let row_pos = 0..s.len() as i32;
            let row_mask = std::iter::repeat_n(1, s.len());
            match side {
                PadSide::Left => {
                    ids.extend(std::iter::repeat_n(pad, pads).chain(row_ids));
                    mask.extend(std::iter::repeat_n(0, pads).chain(row_mask));
                    positions.extend(std::iter::repeat_n(0, pads).chain(row_pos));
                }
                PadSide::Right => {
                    ids.extend(row_ids.chain(std::iter::repeat_n(pad, pads)));
                    mask.extend(row_mask.chain(std::iter::repeat_n(0, pads)));
                    positions.extend(row_pos.chain(std::iter::repeat_n(0, pads)));
                }
            }
        }
        Ok(Tokens {
            batch: seqs.len(),
            seq,
            ids,
            positions,
            mask,
        })
    }

    /// [`Tokens::padded`] on the left (generation prompts).
    pub fn left_padded(seqs: &[Vec<i32>], pad: i32) -> Result<Tokens> {
        Tokens::padded(seqs, pad, PadSide::Left)
    }

    /// [`Tokens::padded`] on the right (training rows).
    pub fn right_padded(seqs: &[Vec<i32>], pad: i32) -> Result<Tokens> {
        Tokens::padded(seqs, pad, PadSide::Right)
    }

    pub fn has_padding(&self) -> bool {
        self.mask.contains(&0)
    }
}

/// Next-token targets [B·T] with -100 where nothing is predicted: each real
/// token whose successor is real (and wanted by `loss_mask`) predicts it.
pub fn next_token_targets(tokens: &Tokens, loss_mask: Option<&[i32]>) -> Vec<i32> {
    let (b, t) = (tokens.batch, tokens.seq);
    let mut out = vec![-100; b * t];
    for bi in 0..b {
        for ti in 0..t.saturating_sub(1) {
            let next = bi * t + ti + 1;
            let wanted = loss_mask.is_none_or(|m| m[next] != 0);
            if tokens.mask[bi * t + ti] == 1 && tokens.mask[next] == 1 && wanted {
                out[bi * t + ti] = tokens.ids[next];
            }
        }
    }
    out
}
