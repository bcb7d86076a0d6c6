//! How elementwise's second operand maps onto the first, and how a launch is
//! cut into pieces whose operands each fit one storage binding.

use anyhow::{bail, ensure, Result};

use crate::device::Gpu;
use crate::kernel::elem_chunks;

/// How the second operand maps onto the first: `b[(i / div) % modulo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broadcast {
    pub div: usize,
    pub modulo: usize,
}

impl Broadcast {
    /// `b` has the same element count as `a`.
    pub fn same(n: usize) -> Broadcast {
        Broadcast { div: 1, modulo: n }
    }

    /// Numpy-style suffix broadcasting of `b` into `a`'s shape (the result
    /// has `a`'s shape). `b` may have lower rank and size-1 dims; its
    /// non-broadcast dims must form one contiguous block of `a`'s dims.
    pub fn infer(a: &[usize], b: &[usize]) -> Result<Broadcast> {
        ensure!(
            b.len() <= a.len(),
            "cannot broadcast {b:?} into {a:?}: higher rank"
        );
        let pad = a.len() - b.len();
        // Dims of `a` (of size > 1) that `b` keeps.
        let mut kept = Vec::new();
        for (d, &ad) in a.iter().enumerate() {
            let bd = if d < pad { 1 } else { b[d - pad] };
            if bd == ad {
                if ad > 1 {
                    kept.push(d);
                }
            } else if bd != 1 {
                bail!("cannot broadcast {b:?} into {a:?}: dim {d} is {bd} vs {ad}");
            }
        }
        let (Some(&first), Some(&last)) = (kept.first(), kept.last()) else {
            return Ok(Broadcast { div: 1, modulo: 1 });
        };
        if let Some(d) = (first..=last).find(|&d| a[d] > 1 && !kept.contains(&d)) {
            bail!(
                "cannot broadcast {b:?} into {a:?}: b's kept dims are not contiguous \
                 (dim {d} is broadcast between them)"
            );
        }
        Ok(Broadcast {
            div: a[last + 1..].iter().product(),
            modulo: a[first..=last].iter().product(),
        })
    }
}

/// One launch: full elements `[lo, hi)` and the elements `[b_lo, b_hi)` of b.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    pub lo: usize,
    pub hi: usize,
    pub b_lo: usize,
    pub b_hi: usize,
}

/// Splits `n` full elements into launches whose operands each fit one
/// binding. Full chunks come from [`elem_chunks`] (aligned starts); b is bound
/// whole when it fits, else each chunk is cut where b's index wraps around or
/// its range would outgrow a binding.
pub(crate) fn pieces(gpu: &Gpu, n: usize, bc: Broadcast) -> Vec<Piece> {
    let align = (gpu.binding_alignment() / 4).max(1) as usize;
    let max_b = (gpu.max_binding() / 4) as usize - align;
    let mut out = Vec::new();
    for (lo, hi) in elem_chunks(gpu, n) {
        if bc.modulo <= max_b + align {
            out.push(Piece {
                lo,
                hi,
                b_lo: 0,
                b_hi: bc.modulo,
            });
            continue;
        }
        let mut cur = lo;
        while cur < hi {
            let q = cur / bc.div;
            let j0 = q % bc.modulo;
            let wrap = (q - j0 + bc.modulo) * bc.div;
            let end = hi.min(wrap).min((q + max_b) * bc.div);
            let j1 = j0 + ((end - 1) / bc.div - q) + 1;
            out.push(Piece {
                lo: cur,
                hi: end,
                b_lo: j0,
                b_hi: j1,
            });
            cur = end;
        }
    }
    out
}
