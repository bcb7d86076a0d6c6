//! row_gather: forward gather and deterministic scatter backward (the
//! embedding mechanism), repeated and unused rows, validation and the tape.

use crate::common::*;
use engine::ops::row_gather::*;
use engine::Tensor;

#[test]
fn row_gather_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    for (b, t, c, m) in [(1, 1, 1, 1), (2, 5, 3, 4), (3, 7, 17, 9), (2, 33, 64, 3)] {
        let n = b * t;
        let what = format!("B={b} T={t} C={c} M={m}");
        let x = rng.vec(n * c, 1.0);
        // Repeats (m > distinct rows possible) and unused rows.
        let mut idx: Vec<i32> = (0..m).map(|_| rng.below(n) as i32).collect();
        if m > 1 {
            idx[m - 1] = idx[0];
        }
        let tidx = Tensor::from_i32(&gpu, &[m], &idx).unwrap();
        let out = poisoned(&[m, c]);
        row_gather_forward_into(&out, &upload(&[b, t, c], &x), &tidx, Some(&idx)).unwrap();
        let want: Vec<f64> = idx
            .iter()
            .flat_map(|&r| to_f64(&x[r as usize * c..][..c]))
            .collect();
        assert_close(&what, &out.to_vec().unwrap(), &want, 0.0, 0.0);

        let dout = rng.vec(m * c, 1.0);
        let dx = row_gather_backward(&upload(&[m, c], &dout), &idx, &[b, t, c]).unwrap();
        assert_eq!(dx.shape(), &[b, t, c]);
        let mut want = vec![0f64; n * c];
        for (i, &r) in idx.iter().enumerate() {
            for j in 0..c {
                want[r as usize * c + j] += dout[i * c + j] as f64;
            }
        }
        assert_close(
            &format!("d{what}"),
            &dx.to_vec().unwrap(),
            &want,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn row_gather_rejects_out_of_range_indices() {
    let gpu = gpu();
    let x = upload(&[2, 3, 4], &[1.0; 24]);
    let idx = [5, 6];
    let tidx = Tensor::from_i32(&gpu, &[2], &idx).unwrap();
    let msg = format!(
        "{:#}",
        row_gather_forward(&x, &tidx, Some(&idx)).unwrap_err()
    );
    assert!(msg.contains("id 6 at position 1"), "{msg}");
    let tape = engine::Tape::new(&gpu);
    let v = tape.param(&x);
    assert!(row_gather(&tape, &v, &[-1]).is_err());
}

#[test]
fn row_gather_tape_matches_finite_differences() {
    let mut rng = Rng::new(32);
    let (b, t, c) = (2, 3, 3);
    // Last real token per sequence, one row twice, some rows never picked.
    let idx = vec![2, 4, 2, 0];
    check_grads(
        "row_gather",
        &[(vec![b, t, c], rng.vec(b * t * c, 1.0))],
        1e-2,
        2e-3,
        |tape, v| row_gather(tape, &v[0], &idx).unwrap(),
    );
}
