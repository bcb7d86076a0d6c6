//! The GPU quantizers and dequantizers of `engine::ops::qmatmul` against
//! bitsandbytes 0.50.2 (`crate::quant::fixture`): GPU quantize == host, GPU
//! dequantize == bnb bit for bit, chunking on a small-binding device; and the
//! params structs against the shaders.

use crate::common::*;
use crate::quant::fixture::{assert_bits, bnb_int8, bnb_nf4, fixture};
use engine::ops::qmatmul::{
    dequantize, dequantize_into, int8_quantize, nf4_quantize, Int8QuantParams, Nf4QuantParams,
    QgemmParams,
};
use engine::quant::{Int8Weight, Nf4Host, Nf4Weight};
use engine::{Gpu, GpuOptions, Tensor};

#[test]
fn params_layouts() {
    crate::assert_params_layout!(
        QgemmParams,
        "qmatmul_nf4",
        "QgemmParams",
        [m, cols, r0, r1, wn, wk, ldx, x_off, y_off, has_bias, accumulate, zero, qscale]
    );
    crate::assert_params_layout!(
        QgemmParams,
        "qmatmul_int8",
        "QgemmParams",
        [m, cols, r0, r1, wn, wk, ldx, x_off, y_off, has_bias, accumulate, zero, qscale]
    );
    crate::assert_params_layout!(
        Nf4QuantParams,
        "qmatmul_nf4",
        "QuantParams",
        [count, base, src_off, dst_off, numel, blocks, zero]
    );
    crate::assert_params_layout!(
        Int8QuantParams,
        "qmatmul_int8",
        "QuantParams",
        [count, base, src_off, dst_off, numel, k, inv127]
    );
}

#[test]
fn gpu_nf4_quantize_matches_host() {
    let gpu = gpu();
    for c in &fixture().cases {
        let w = Tensor::from_f32(&gpu, &[c.n, c.k], &c.w).unwrap();
        let got = nf4_quantize(&w).unwrap().to_host().unwrap();
        let want = Nf4Host::quantize(&c.w, c.n, c.k).unwrap();
        assert_eq!(got.packed, want.packed, "{}: packed codes", c.name);
        assert_eq!(got.absmax_q, want.absmax_q, "{}: absmax codes", c.name);
        assert_bits(&format!("{}: absmax2", c.name), &got.absmax2, &want.absmax2);
        assert_eq!(
            got.offset.to_bits(),
            want.offset.to_bits(),
            "{}: offset",
            c.name
        );
    }
}

#[test]
fn gpu_nf4_dequantize_matches_bitsandbytes() {
    let gpu = gpu();
    for c in &fixture().cases {
        let w = Nf4Weight::from_host(&gpu, &bnb_nf4(c)).unwrap();
        assert_eq!(
            w.to_host().unwrap(),
            bnb_nf4(c),
            "{}: upload round trip",
            c.name
        );
        let y = poisoned(&[c.n, c.k]);
        dequantize_into(&y, &w).unwrap();
        assert_bits(
            &format!("{}: GPU dequantize", c.name),
            &y.to_vec().unwrap(),
            &c.nf4_deq,
        );
    }
}

#[test]
fn gpu_int8_quantize_and_dequantize_match() {
    let gpu = gpu();
    for c in &fixture().cases {
        let w = Tensor::from_f32(&gpu, &[c.n, c.k], &c.w).unwrap();
        let q = int8_quantize(&w).unwrap();
        assert_eq!(
            q.to_host().unwrap(),
            bnb_int8(c),
            "{}: GPU int8 quantize",
            c.name
        );
        let y = poisoned(&[c.n, c.k]);
        dequantize_into(&y, &Int8Weight::from_host(&gpu, &bnb_int8(c)).unwrap()).unwrap();
        assert_bits(
            &format!("{}: GPU int8 dequantize", c.name),
            &y.to_vec().unwrap(),
            &c.int8_deq,
        );
    }
}

#[test]
fn quantize_and_dequantize_chunk_on_a_small_binding_device() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(8192);
    let small = Gpu::new(&opts).unwrap();
    // 96×64 f32 = 24 KiB: three bindings' worth; the codes (3 and 6 KiB) fit one.
    let c = fixture()
        .cases
        .iter()
        .find(|c| c.name == "gauss_96x64")
        .unwrap();
    let w = Tensor::from_f32(&small, &[c.n, c.k], &c.w).unwrap();
    let q = nf4_quantize(&w).unwrap();
    assert_eq!(
        q.to_host().unwrap(),
        Nf4Host::quantize(&c.w, c.n, c.k).unwrap()
    );
    let d = dequantize(&Nf4Weight::from_host(&small, &bnb_nf4(c)).unwrap()).unwrap();
    assert_bits("chunked NF4 dequantize", &d.to_vec().unwrap(), &c.nf4_deq);
    let q8 = int8_quantize(&w).unwrap();
    assert_eq!(q8.to_host().unwrap(), bnb_int8(c));
    let d8 = dequantize(&q8).unwrap();
    assert_bits(
        "chunked int8 dequantize",
        &d8.to_vec().unwrap(),
        &c.int8_deq,
    );
    // A weight whose codes exceed one binding is refused with a clear error.
    let big = Tensor::from_f32(&small, &[256, 64], &vec![1.0; 256 * 64]).unwrap();
    let e = int8_quantize(&big)
        .err()
        .expect("int8 codes of 16 KiB > 8 KiB binding");
    assert!(format!("{e:#}").contains("storage binding"), "{e:#}");
}
