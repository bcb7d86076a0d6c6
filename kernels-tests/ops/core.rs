//! The core: device, tensors (f32/f16/bf16 storage), the dispatch helper,
//! binding-limit chunking, and the tape's bookkeeping.

use crate::common::*;
use engine::tensor::axpy::{axpy, axpy_into_new, AxpyParams};
use engine::{DType, Gpu, GpuOptions, Tape, Tensor};

#[test]
fn axpy_params_layout() {
    crate::assert_params_layout!(AxpyParams, "axpy", "AxpyParams", [n, alpha]);
}

#[test]
fn axpy_matches_reference_at_odd_sizes() {
    let mut rng = Rng::new(1);
    for n in [1usize, 7, 255, 257, 1000] {
        let x = rng.vec(n, 2.0);
        let y = rng.vec(n, 2.0);
        let ty = upload(&[n], &y);
        axpy(&ty, -0.75, &upload(&[n], &x)).unwrap();
        let want: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| b as f64 - 0.75 * a as f64)
            .collect();
        assert_close(
            &format!("axpy n={n}"),
            &ty.to_vec().unwrap(),
            &want,
            1e-6,
            1e-6,
        );
    }
}

/// Out of place: in-place axpy's bits in a new tensor, y untouched (odd
/// sizes run the scalar entry, multiples of 4 the vec4 one).
#[test]
fn axpy_into_new_is_axpy_out_of_place() {
    let mut rng = Rng::new(2);
    for n in [1usize, 7, 256, 257, 1000] {
        let (x, y) = (rng.vec(n, 2.0), rng.vec(n, 2.0));
        let (tx, ty) = (upload(&[n], &x), upload(&[n], &y));
        let got = axpy_into_new(&ty, -0.75, &tx).unwrap();
        assert_eq!(got.shape(), &[n]);
        assert_eq!(ty.to_vec().unwrap(), y, "y changed, n={n}");
        axpy(&ty, -0.75, &tx).unwrap();
        let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(got.to_vec().unwrap()),
            bits(ty.to_vec().unwrap()),
            "n={n}"
        );
    }
}

/// A multiple of 4 elements runs axpy4: the scalar entry's values bit for
/// bit (its first 4k of 4k + 1 elements).
#[test]
fn axpy_vec4_entry_equals_the_scalar_entry() {
    let mut rng = Rng::new(3);
    let n = 4 * 257;
    let (x, y) = (rng.vec(n + 1, 2.0), rng.vec(n + 1, 2.0));
    let run = |n: usize| {
        let ty = upload(&[n], &y[..n]);
        axpy(&ty, -0.75, &upload(&[n], &x[..n])).unwrap();
        ty.to_vec().unwrap()
    };
    assert_eq!(run(n)[..], run(n + 1)[..n]);
}

#[test]
fn half_precision_storage_round_trips() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    let data = rng.vec(9, 3.0);
    for dtype in [DType::F16, DType::BF16] {
        let t = Tensor::from_host(&gpu, &[3, 3], dtype, &data).unwrap();
        assert_eq!(t.bytes(), 20, "9 packed halves take 5 words");
        let back = t.to_vec().unwrap();
        let rtol = if dtype == DType::F16 { 1e-3 } else { 8e-3 };
        assert_close(dtype.name(), &back, &to_f64(&data), 1e-6, rtol);
    }
}

#[test]
fn ops_chunk_tensors_larger_than_one_binding() {
    // A second device that pretends storage bindings hold only 4 KiB.
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    assert_eq!(small.max_binding(), 4096);
    let n = 5000; // 20 KB per tensor: five bindings' worth
    let mut rng = Rng::new(3);
    let x = rng.vec(n, 1.0);
    let y = rng.vec(n, 1.0);
    let ty = Tensor::from_f32(&small, &[n], &y).unwrap();
    axpy(&ty, 2.0, &Tensor::from_f32(&small, &[n], &x).unwrap()).unwrap();
    let want: Vec<f64> = x
        .iter()
        .zip(&y)
        .map(|(&a, &b)| b as f64 + 2.0 * a as f64)
        .collect();
    assert_close("chunked axpy", &ty.to_vec().unwrap(), &want, 1e-6, 1e-6);
}

#[test]
fn poisoned_tensors_read_back_as_nan() {
    let t = poisoned(&[5]);
    assert!(t.to_vec().unwrap().iter().all(|v| v.is_nan()));
}

#[test]
fn tape_accumulates_shared_and_aliased_gradients() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let a = tape.param(&upload(&[3], &[1.0, 2.0, 3.0]));
    // y = identity(a), recorded twice, both passing dy straight through (aliases).
    let pass = |v: &engine::Var| {
        let out = v.tensor().deep_copy().unwrap();
        tape.record("identity", &[v], out, |dy, _| Ok(vec![Some(dy.clone())]))
    };
    let b = pass(&a);
    let c = pass(&a);
    let sum = tape.record(
        "add",
        &[&b, &c],
        b.tensor().deep_copy().unwrap(),
        |dy, _| Ok(vec![Some(dy.clone()), Some(dy.clone())]),
    );
    let seed = upload(&[3], &[1.0, 10.0, 100.0]);
    let grads = tape.backward_with(&sum, seed.clone()).unwrap();
    assert_close(
        "da",
        &grads.get(&a).unwrap().to_vec().unwrap(),
        &[2.0, 20.0, 200.0],
        0.0,
        1e-7,
    );
    assert_close(
        "seed untouched",
        &seed.to_vec().unwrap(),
        &[1.0, 10.0, 100.0],
        0.0,
        0.0,
    );
    assert!(tape.is_empty(), "backward consumes the recorded nodes");
}

#[test]
fn no_grad_records_nothing() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let a = tape.param(&upload(&[2], &[1.0, 2.0]));
    {
        let _g = tape.no_grad();
        let b = tape.record("identity", &[&a], a.tensor().clone(), |dy, _| {
            Ok(vec![Some(dy.clone())])
        });
        assert!(!b.requires_grad());
    }
    assert!(tape.is_empty());
}

#[test]
fn reshape_is_a_view_with_a_reshaping_backward() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let a = tape.param(&upload(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let b = tape.reshape(&a, &[3, 2]).unwrap();
    assert!(b.tensor().same_storage(a.tensor()));
    let grads = tape
        .backward_with(&b, upload(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
        .unwrap();
    let g = grads.get(&a).unwrap();
    assert_eq!(g.shape(), &[2, 3]);
    assert!(tape.reshape(&a, &[4]).is_err());
}

#[test]
fn copy_elems_from_copies_a_range() {
    let dst = upload(&[6], &[0.0; 6]);
    dst.copy_elems_from(2, &upload(&[4], &[1.0, 2.0, 3.0, 4.0]), 1, 3)
        .unwrap();
    assert_eq!(dst.to_vec().unwrap(), vec![0.0, 0.0, 2.0, 3.0, 4.0, 0.0]);
    assert!(dst
        .copy_elems_from(5, &upload(&[4], &[0.0; 4]), 0, 2)
        .is_err());
}

/// Each dispatch's params are a slice of its batch's params buffer
/// (device/params.rs): 700 dispatches with distinct params, across several
/// batches and arenas, with reads (submits) in between, each see their own.
#[test]
fn every_dispatch_reads_its_own_params_across_batches() {
    let n = 5;
    let x = upload(&[n], &[1.0; 5]);
    let y = upload(&[n], &[0.0; 5]);
    let z = upload(&[2 * n + 1], &vec![0.0; 2 * n + 1]);
    let x2 = upload(&[2 * n + 1], &vec![1.0; 2 * n + 1]);
    let mut want = 0.0f64;
    let mut want_z = 0.0f64;
    for i in 1..=700 {
        axpy(&y, -(i as f32), &x).unwrap();
        want -= i as f64;
        if i % 7 == 0 {
            axpy(&z, i as f32 * 0.5, &x2).unwrap();
            want_z += i as f64 * 0.5;
        }
        if i % 333 == 0 {
            assert_eq!(
                y.to_vec().unwrap(),
                vec![want as f32; n],
                "after {i} dispatches"
            );
        }
    }
    assert_eq!(y.to_vec().unwrap(), vec![want as f32; n]);
    assert_eq!(z.to_vec().unwrap(), vec![want_z as f32; 2 * n + 1]);
}
