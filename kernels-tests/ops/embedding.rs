//! embedding: gather forward (f32 and packed f16/bf16 tables), CSR scatter-add
//! backward, id validation, binding chunking, and the tape.

use crate::common::*;
use engine::ops::embedding::*;
use engine::{DType, Gpu, GpuOptions, Tape, Tensor};
use std::sync::Arc;

fn ref_forward(table: &[f32], c: usize, ids: &[i32]) -> Vec<f64> {
    ids.iter()
        .flat_map(|&id| table[id as usize * c..][..c].iter().map(|&v| v as f64))
        .collect()
}

fn ref_backward(dout: &[f32], c: usize, ids: &[i32], vocab: usize) -> Vec<f64> {
    let mut g = vec![0f64; vocab * c];
    for (n, &id) in ids.iter().enumerate() {
        for j in 0..c {
            g[id as usize * c + j] += dout[n * c + j] as f64;
        }
    }
    g
}

/// Ids with repeats, drawn from the lower part of the vocabulary so that
/// some ids stay unused.
fn draw_ids(rng: &mut Rng, n: usize, vocab: usize) -> Vec<i32> {
    let span = if vocab > 2 { vocab * 2 / 3 } else { vocab };
    (0..n).map(|_| rng.below(span) as i32).collect()
}

#[test]
fn embedding_params_layout() {
    crate::assert_params_layout!(
        EmbeddingParams,
        "embedding",
        "EmbeddingParams",
        [n, c, vocab, row_lo, row_hi, table_base, out_off, ids_off, zero_oob]
    );
    crate::assert_params_layout!(
        EmbeddingBackwardParams,
        "embedding",
        "EmbeddingBackwardParams",
        [nu, c, u_lo, table_base, dout_off]
    );
}

#[test]
fn embedding_forward_and_backward_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for (vocab, c, b, t) in [
        (1, 1, 1, 1),
        (5, 3, 2, 1),
        (5, 17, 3, 7),
        (300, 64, 2, 9),
        (300, 3, 4, 33),
        (1, 17, 2, 5),
    ] {
        let what = format!("V={vocab} C={c} B={b} T={t}");
        let n = b * t;
        let table = rng.vec(vocab * c, 1.0);
        let ids = draw_ids(&mut rng, n, vocab);
        let tids = Tensor::from_i32(&gpu, &[b, t], &ids).unwrap();
        let out = poisoned(&[b, t, c]);
        let ttable = upload(&[vocab, c], &table);
        embedding_forward_into(&out, &ttable, &tids, Some(&ids)).unwrap();
        let want = ref_forward(&table, c, &ids);
        assert_close(&what, &out.to_vec().unwrap(), &want, 0.0, 0.0);
        let alloc = embedding_forward(&ttable, &tids, None).unwrap();
        assert_eq!(alloc.shape(), &[b, t, c]);

        let dout = rng.vec(n * c, 1.0);
        let g = embedding_backward(&upload(&[b, t, c], &dout), &ids, vocab).unwrap();
        assert_eq!(g.shape(), &[vocab, c]);
        let want = ref_backward(&dout, c, &ids, vocab);
        // Short f32 sums of up to n terms.
        assert_close(&format!("d{what}"), &g.to_vec().unwrap(), &want, 1e-6, 1e-6);
    }
}

#[test]
fn embedding_backward_accumulates_deterministically_with_many_repeats() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    let (vocab, c, n) = (7, 5, 400);
    // Heavy repeats: every id occurs ~57 times, id 6 never.
    let ids: Vec<i32> = (0..n).map(|_| rng.below(6) as i32).collect();
    let dout = rng.vec(n * c, 1.0);
    let base = rng.vec(vocab * c, 1.0);
    let dtable = upload(&[vocab, c], &base);
    embedding_backward_accumulate(&dtable, &upload(&[n, c], &dout), &ids).unwrap();
    let mut want = ref_backward(&dout, c, &ids, vocab);
    for (w, &b) in want.iter_mut().zip(&base) {
        *w += b as f64;
    }
    let got = dtable.to_vec().unwrap();
    assert_close("accumulate", &got, &want, 1e-5, 1e-5);
    assert_eq!(&got[6 * c..], &base[6 * c..], "unused id row untouched");
    // Bitwise identical on a second run: fixed summation order.
    let again = embedding_backward(&upload(&[n, c], &dout), &ids, vocab).unwrap();
    let again2 = embedding_backward(&upload(&[n, c], &dout), &ids, vocab).unwrap();
    assert_eq!(again.to_vec().unwrap(), again2.to_vec().unwrap());
    assert!(again.to_vec().unwrap()[6 * c..].iter().all(|&v| v == 0.0));
    drop(gpu);
}

#[test]
fn embedding_out_of_range_ids_are_rejected_or_zeroed() {
    let gpu = gpu();
    let table = upload(&[5, 3], &[1.0; 15]);
    let ids = [0, 4, 5, 1];
    let tids = Tensor::from_i32(&gpu, &[4], &ids).unwrap();
    let err = embedding_forward(&table, &tids, Some(&ids)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("id 5") && msg.contains("position 2"), "{msg}");
    let neg = [0, -1];
    let err = embedding_backward(&upload(&[2, 3], &[0.0; 6]), &neg, 5).unwrap_err();
    assert!(
        format!("{err:#}").contains("id -1 at position 1"),
        "{err:#}"
    );
    // Device-only ids: the kernel never reads out of bounds and writes zeros.
    let ids = [0, 7, -3, 4];
    let tids = Tensor::from_i32(&gpu, &[4], &ids).unwrap();
    let out = poisoned(&[4, 3]);
    embedding_forward_into(&out, &table, &tids, None).unwrap();
    let want = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    assert_close("oob zeros", &out.to_vec().unwrap(), &want, 0.0, 0.0);
    // The tape function validates too.
    let tape = Tape::new(&gpu);
    let v = tape.param(&table);
    assert!(embedding_ids(&tape, &v, &[9], &[1]).is_err());
}

#[test]
fn embedding_reads_packed_half_tables() {
    let gpu = gpu();
    let mut rng = Rng::new(13);
    for (vocab, c) in [(5usize, 3usize), (300, 17), (4, 64)] {
        let table = rng.vec(vocab * c, 2.0);
        let ids = draw_ids(&mut rng, 11, vocab);
        let tids = Tensor::from_i32(&gpu, &[11], &ids).unwrap();
        for dtype in [DType::F16, DType::BF16] {
            let t = Tensor::from_host(&gpu, &[vocab, c], dtype, &table).unwrap();
            // Reference: the stored (rounded) values, read back exactly.
            let stored = t.to_vec().unwrap();
            let out = poisoned(&[11, c]);
            embedding_forward_into(&out, &t, &tids, Some(&ids)).unwrap();
            let what = format!("{} V={vocab} C={c}", dtype.name());
            assert_close(
                &what,
                &out.to_vec().unwrap(),
                &ref_forward(&stored, c, &ids),
                0.0,
                0.0,
            );
        }
    }
}

fn small_gpu() -> Arc<Gpu> {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    Gpu::new(&opts).unwrap()
}

#[test]
fn embedding_chunks_tables_and_rows_larger_than_one_binding() {
    let small = small_gpu();
    let mut rng = Rng::new(14);
    // Table 300x17 f32 = 20 KB (5+ bindings), out 150x17 = 10 KB.
    let (vocab, c, n) = (300, 17, 150);
    let table = rng.vec(vocab * c, 1.0);
    // Every id at least once near chunk edges, plus repeats.
    let mut ids: Vec<i32> = (0..n).map(|_| rng.below(vocab) as i32).collect();
    ids[0] = 0;
    ids[1] = vocab as i32 - 1;
    ids[n - 1] = 0;
    let tids = Tensor::from_i32(&small, &[n], &ids).unwrap();
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let t = Tensor::from_host(&small, &[vocab, c], dtype, &table).unwrap();
        let stored = t.to_vec().unwrap();
        let out = Tensor::empty(&small, &[n, c], DType::F32).unwrap();
        out.poison();
        embedding_forward_into(&out, &t, &tids, Some(&ids)).unwrap();
        let what = format!("chunked forward {}", dtype.name());
        assert_close(
            &what,
            &out.to_vec().unwrap(),
            &ref_forward(&stored, c, &ids),
            0.0,
            0.0,
        );
    }
    let dout = rng.vec(n * c, 1.0);
    let g = embedding_backward(
        &Tensor::from_f32(&small, &[n, c], &dout).unwrap(),
        &ids,
        vocab,
    )
    .unwrap();
    assert_close(
        "chunked backward",
        &g.to_vec().unwrap(),
        &ref_backward(&dout, c, &ids, vocab),
        1e-6,
        1e-6,
    );
    // Device-only out-of-range ids with a chunked table are zeroed exactly once.
    let bad = [0, 300, -1, 299];
    let tb = Tensor::from_i32(&small, &[4], &bad).unwrap();
    let t = Tensor::from_f32(&small, &[vocab, c], &table).unwrap();
    let out = Tensor::empty(&small, &[4, c], DType::F32).unwrap();
    out.poison();
    embedding_forward_into(&out, &t, &tb, None).unwrap();
    let mut want = ref_forward(&table, c, &[0]);
    want.extend(vec![0.0; 2 * c]);
    want.extend(ref_forward(&table, c, &[299]));
    assert_close("chunked oob", &out.to_vec().unwrap(), &want, 0.0, 0.0);
}

#[test]
fn embedding_tape_matches_finite_differences() {
    let mut rng = Rng::new(15);
    let (vocab, c) = (5, 3);
    let ids = vec![3, 1, 3, 0, 3, 1];
    check_grads(
        "embedding",
        &[(vec![vocab, c], rng.vec(vocab * c, 1.0))],
        1e-2,
        2e-3,
        |tape, v| embedding_ids(tape, &v[0], &ids, &[2, 3]).unwrap(),
    );
    // Position embeddings (GPT-2 wpe) are the same op with position ids.
    let pos = vec![0, 1, 2, 0, 1, 2];
    check_grads(
        "wpe",
        &[(vec![4, c], rng.vec(4 * c, 1.0))],
        1e-2,
        2e-3,
        |tape, v| embedding_ids(tape, &v[0], &pos, &[2, 3]).unwrap(),
    );
}
