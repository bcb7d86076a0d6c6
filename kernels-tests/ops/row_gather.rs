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

/// row_scatter places rows among exact zeros (the bits of x, -0.0 aside,
/// which the placement's 0 + x makes +0.0), and its backward gathers them.
#[test]
fn row_scatter_places_rows_among_zeros_and_gathers_back() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    for (m, c, n) in [(1, 1, 1), (3, 5, 7), (9, 17, 40), (4, 1, 4)] {
        let what = format!("M={m} C={c} N={n}");
        let mut rows: Vec<i32> = (0..n as i32).collect();
        for i in (1..n).rev() {
            rows.swap(i, rng.below(i + 1));
        }
        let idx = rows[..m].to_vec();
        let x = rng.vec(m * c, 1.0);
        let tape = engine::Tape::new(&gpu);
        let v = tape.param(&upload(&[m, c], &x));
        let out = row_scatter(&tape, &v, &idx, n).unwrap();
        assert_eq!(out.shape(), &[n, c]);
        let mut want = vec![0f32; n * c];
        for (i, &r) in idx.iter().enumerate() {
            want[r as usize * c..][..c].copy_from_slice(&x[i * c..][..c]);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out.tensor().to_vec().unwrap()), bits(&want), "{what}");
        let dy = rng.vec(n * c, 1.0);
        let grads = tape.backward_with(&out, upload(&[n, c], &dy)).unwrap();
        let dx = grads.get(&v).unwrap().to_vec().unwrap();
        let want: Vec<f32> = idx
            .iter()
            .flat_map(|&r| dy[r as usize * c..][..c].to_vec())
            .collect();
        assert_eq!(bits(&dx), bits(&want), "d{what}");
    }
}

#[test]
fn row_scatter_rejects_repeated_and_out_of_range_rows() {
    let gpu = gpu();
    let tape = engine::Tape::new(&gpu);
    let v = tape.param(&upload(&[2, 3], &[1.0; 6]));
    let e = format!("{:#}", row_scatter(&tape, &v, &[1, 1], 4).unwrap_err());
    assert!(e.contains("row 1 is named twice"), "{e}");
    let e = format!("{:#}", row_scatter(&tape, &v, &[0, 4], 4).unwrap_err());
    assert!(e.contains("id 4 at position 1"), "{e}");
}

#[test]
fn row_scatter_tape_matches_finite_differences() {
    let mut rng = Rng::new(34);
    let idx = vec![5, 0, 2];
    check_grads(
        "row_scatter",
        &[(vec![3, 2], rng.vec(6, 1.0))],
        1e-2,
        2e-3,
        |tape, v| row_scatter(tape, &v[0], &idx, 6).unwrap(),
    );
}
