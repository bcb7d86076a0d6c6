//! Which draw each row gets: rows dropped from the batch once finished
//! (`keep_rows`), and rows with seeds of their own in one batch, draw
//! exactly what the rows would draw otherwise.

use super::grid_logits;
use crate::common::*;
use engine::models::sampling::SamplingConfig;
use engine::ops::sample::DeviceSampler;

/// `keep_rows` with only finished rows dropped changes no id: two samplers
/// on the same logits, one shrunk to its running rows after every step that
/// ends one (with a host-side `finish` too), give the same ids for every
/// kept row, with the repetition penalty's bitmaps carried along.
#[test]
fn keeping_running_rows_changes_no_draw() {
    let (batch, vocab, steps) = (11, 37, 12);
    let mut rng = Rng::new(8);
    let cfg = SamplingConfig {
        repetition_penalty: 1.4,
        top_k: 9,
        top_p: 0.95,
        ..SamplingConfig::sample()
    };
    let ctx: Vec<Vec<u32>> = (0..batch).map(|b| vec![b as u32, 5]).collect();
    let gpu = gpu();
    let seeds = vec![4; batch];
    let make = || {
        DeviceSampler::new(
            &gpu,
            batch,
            vocab,
            vocab,
            &cfg.spec(),
            &[3, 7],
            0,
            &seeds,
            &ctx,
        )
    };
    let (mut full, mut kept) = (make().unwrap(), make().unwrap());
    // kept's row r is full's row running[r].
    let mut running: Vec<usize> = (0..batch).collect();
    let mut shrinks = 0;
    for step in 0..steps {
        let mut logits = grid_logits(&mut rng, batch * vocab);
        for b in 0..batch {
            logits[b * vocab + 3] = 1.5;
        }
        let sub: Vec<f32> = running
            .iter()
            .flat_map(|&b| logits[b * vocab..(b + 1) * vocab].to_vec())
            .collect();
        let want = full.step(&upload(&[batch, vocab], &logits)).unwrap();
        let got = kept.step(&upload(&[running.len(), vocab], &sub)).unwrap();
        for (r, &b) in running.iter().enumerate() {
            assert_eq!(got[r], want[b], "step {step}: row {b} (kept as {r})");
        }
        if step == 2 {
            // A stop string ends row 4 on the host.
            let r = running.iter().position(|&b| b == 4).unwrap();
            full.finish(4);
            kept.finish(r);
        }
        let live: Vec<usize> = (0..running.len())
            .filter(|&r| !kept.finished()[r])
            .collect();
        if live.is_empty() {
            break;
        }
        if live.len() < running.len() {
            kept.keep_rows(&live).unwrap();
            running = live.iter().map(|&r| running[r]).collect();
            shrinks += 1;
        }
    }
    assert!(shrinks >= 3, "rows should end at several steps ({shrinks})");
}

/// Rows that share a seed draw from its stream in row order, whatever other
/// rows share the batch: one sampler over three seeds (one of them on rows
/// that are not contiguous) gives every row the id that a sampler over just
/// that seed's rows gives, with rows finishing on stop ids and on the host,
/// the repetition penalty on, and finished rows dropped along the way.
#[test]
fn rows_draw_from_their_own_seeds_stream() {
    let (vocab, steps) = (29, 10);
    let seeds: [u64; 11] = [21, 21, 21, 21, 22, 23, 23, 23, 23, 21, 21];
    let batch = seeds.len();
    let cfg = SamplingConfig {
        repetition_penalty: 1.3,
        top_k: 12,
        ..SamplingConfig::sample()
    };
    let ctx: Vec<Vec<u32>> = (0..batch).map(|b| vec![b as u32 % 5, 7]).collect();
    let gpu = gpu();
    let sampler = |rows: &[usize]| {
        let s: Vec<u64> = rows.iter().map(|&b| seeds[b]).collect();
        let c: Vec<Vec<u32>> = rows.iter().map(|&b| ctx[b].clone()).collect();
        DeviceSampler::new(&gpu, rows.len(), vocab, vocab, &cfg.spec(), &[3], 0, &s, &c).unwrap()
    };
    let mut all = sampler(&(0..batch).collect::<Vec<_>>());
    // Each seed's rows, in order, with a sampler of their own.
    let mut own: Vec<(Vec<usize>, DeviceSampler)> = [21, 22, 23]
        .iter()
        .map(|&seed| {
            let rows: Vec<usize> = (0..batch).filter(|&b| seeds[b] == seed).collect();
            let s = sampler(&rows);
            (rows, s)
        })
        .collect();
    let mut rng = Rng::new(5);
    // all's row r is row running[r] of the batch.
    let mut running: Vec<usize> = (0..batch).collect();
    let mut finished_rows = 0;
    for step in 0..steps {
        let logits = grid_logits(&mut rng, batch * vocab);
        let rows_of = |rows: &[usize]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&b| logits[b * vocab..(b + 1) * vocab].to_vec())
                .collect()
        };
        let got = all
            .step(&upload(&[running.len(), vocab], &rows_of(&running)))
            .unwrap();
        for (rows, s) in own.iter_mut() {
            let want = s
                .step(&upload(&[rows.len(), vocab], &rows_of(rows)))
                .unwrap();
            for (i, &b) in rows.iter().enumerate() {
                if let Some(r) = running.iter().position(|&x| x == b) {
                    assert_eq!(got[r], want[i], "step {step}: row {b} (seed {})", seeds[b]);
                }
            }
            if step == 1 {
                // A stop string ends each seed's first row on the host.
                s.finish(0);
            }
        }
        if step == 1 {
            for (rows, _) in &own {
                all.finish(running.iter().position(|&x| x == rows[0]).unwrap());
            }
        }
        let live: Vec<usize> = (0..running.len()).filter(|&r| !all.finished()[r]).collect();
        if live.is_empty() {
            break;
        }
        if step % 3 == 2 && live.len() < running.len() {
            finished_rows += running.len() - live.len();
            all.keep_rows(&live).unwrap();
            running = live.iter().map(|&r| running[r]).collect();
        }
    }
    assert!(
        finished_rows >= 4,
        "rows should finish and be dropped ({finished_rows})"
    );
}
