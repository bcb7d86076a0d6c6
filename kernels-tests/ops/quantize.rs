//! Quantized-weight formats against bitsandbytes 0.50.2 (fixture made by
//! `kernels-tests/fixtures/make_quant_fixtures.py`): host quantize == bnb's
//! codes, GPU quantize == host, host and GPU dequantize == bnb bit for bit;
//! chunking on a small-binding device (error budgets, bytes per parameter and
//! layouts: `quant_budgets.rs`).

use crate::common::*;
use engine::ops::qmatmul_int8::{
    int8_dequantize, int8_dequantize_into, int8_quantize, Int8QuantParams,
};
use engine::ops::qmatmul_nf4::{nf4_dequantize, nf4_dequantize_into, nf4_quantize, Nf4QuantParams};
use engine::quant::nf4::{absmax_mean, quantize_blocks};
use engine::quant::tables::{dynamic_map, nf4_code, DYNAMIC_MAP_BITS, NF4_BITS};
use engine::quant::{Int8Host, Int8Weight, Nf4Host, Nf4Weight, QgemmParams};
use engine::{Gpu, GpuOptions, Tensor};
use safetensors::SafeTensors;
use std::sync::OnceLock;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels-tests/fixtures/quant");

/// One bnb reference case (see the fixture script for the fields).
pub struct Case {
    pub name: String,
    pub n: usize,
    pub k: usize,
    pub w: Vec<f32>,
    pub packed: Vec<u8>,
    pub absmax_q: Vec<u8>,
    pub absmax2: Vec<f32>,
    pub offset: f32,
    pub absmax_raw: Vec<f32>,
    pub nf4_deq: Vec<f32>,
    pub int8_codes: Vec<i8>,
    pub int8_stats: Vec<f32>,
    pub int8_deq: Vec<f32>,
    pub meta: serde_json::Value,
}

pub struct Fixture {
    pub cases: Vec<Case>,
    pub dynamic_map: Vec<f32>,
    pub nf4_code: Vec<f32>,
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    bytemuck::pod_collect_to_vec(t.data())
}

fn bytes(st: &SafeTensors, name: &str) -> Vec<u8> {
    st.tensor(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .data()
        .to_vec()
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let raw = std::fs::read(format!("{DIR}/quant.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&raw).unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/quant.json")).unwrap())
                .unwrap();
        let mut cases: Vec<Case> = meta["cases"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, m)| {
                let g = |f: &str| format!("{name}.{f}");
                Case {
                    name: name.clone(),
                    n: m["n"].as_u64().unwrap() as usize,
                    k: m["k"].as_u64().unwrap() as usize,
                    w: f32s(&st, &g("w")),
                    packed: bytes(&st, &g("nf4_packed")),
                    absmax_q: bytes(&st, &g("nf4_absmax_q")),
                    absmax2: f32s(&st, &g("nf4_absmax2")),
                    offset: f32s(&st, &g("nf4_offset"))[0],
                    absmax_raw: f32s(&st, &g("nf4_absmax_raw")),
                    nf4_deq: f32s(&st, &g("nf4_deq")),
                    int8_codes: bytemuck::cast_slice(&bytes(&st, &g("int8_codes"))).to_vec(),
                    int8_stats: f32s(&st, &g("int8_stats")),
                    int8_deq: f32s(&st, &g("int8_deq")),
                    meta: m.clone(),
                }
            })
            .collect();
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        Fixture {
            cases,
            dynamic_map: f32s(&st, "dynamic_map"),
            nf4_code: f32s(&st, "nf4_code"),
        }
    })
}

/// The case's bnb state as an [`Nf4Host`].
pub fn bnb_nf4(c: &Case) -> Nf4Host {
    Nf4Host {
        n: c.n,
        k: c.k,
        packed: c.packed.clone(),
        absmax_q: c.absmax_q.clone(),
        absmax2: c.absmax2.clone(),
        offset: c.offset,
        code8: dynamic_map(),
    }
}

pub fn bnb_int8(c: &Case) -> Int8Host {
    Int8Host {
        n: c.n,
        k: c.k,
        codes: c.int8_codes.clone(),
        stats: c.int8_stats.clone(),
    }
}

/// Largest distance in ulps between two f32 slices (sign-aware).
pub fn max_ulps(a: &[f32], b: &[f32]) -> u32 {
    assert_eq!(a.len(), b.len());
    let key = |v: f32| {
        let i = v.to_bits() as i32;
        if i < 0 {
            i32::MIN - i
        } else {
            i
        }
    };
    a.iter()
        .zip(b)
        .map(|(&x, &y)| key(x).abs_diff(key(y)))
        .max()
        .unwrap_or(0)
}

#[track_caller]
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} is {} want {} ({} of {} differ)",
            got[i],
            want[i],
            (0..got.len())
                .filter(|&i| got[i].to_bits() != want[i].to_bits())
                .count(),
            got.len()
        );
    }
}

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
fn tables_are_bitsandbytes_tables() {
    let f = fixture();
    assert_bits("NF4 codebook", &nf4_code(), &f.nf4_code);
    assert_bits("dynamic 8-bit map", &dynamic_map(), &f.dynamic_map);
    assert_eq!(NF4_BITS.len(), 16);
    assert_eq!(DYNAMIC_MAP_BITS.len(), 256);
}

#[test]
fn host_nf4_quantize_matches_bitsandbytes() {
    for c in &fixture().cases {
        let (_, absmax) = quantize_blocks(&c.w);
        assert_bits(&format!("{}: absmax", c.name), &absmax, &c.absmax_raw);
        let h = Nf4Host::quantize(&c.w, c.n, c.k).unwrap();
        assert_eq!(
            h.packed, c.packed,
            "{}: packed 4-bit codes (incl. nibble order and padding)",
            c.name
        );
        // The offset is a mean: torch's summation order vs our fixed tree differ by an ulp or two.
        assert!(
            max_ulps(&[h.offset], &[c.offset]) <= 4,
            "{}: offset {} vs bnb {}",
            c.name,
            h.offset,
            c.offset
        );
        assert_eq!(absmax_mean(&absmax), h.offset);
        let diff = h
            .absmax_q
            .iter()
            .zip(&c.absmax_q)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            diff,
            0,
            "{}: {diff} of {} absmax codes differ from bnb",
            c.name,
            c.absmax_q.len()
        );
        assert_bits(&format!("{}: absmax2", c.name), &h.absmax2, &c.absmax2);
    }
}

#[test]
fn host_nf4_dequantize_is_bit_exact() {
    for c in &fixture().cases {
        assert_bits(
            &format!("{}: dequantize(bnb state)", c.name),
            &bnb_nf4(c).dequantize(),
            &c.nf4_deq,
        );
        // Our own quantization of the same weight: identical up to the offset's last bits.
        let ours = Nf4Host::quantize(&c.w, c.n, c.k).unwrap().dequantize();
        assert_close(
            &format!("{}: dequantize(ours)", c.name),
            &ours,
            &to_f64(&c.nf4_deq),
            0.0,
            1e-6,
        );
    }
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
        nf4_dequantize_into(&y, &w).unwrap();
        assert_bits(
            &format!("{}: GPU dequantize", c.name),
            &y.to_vec().unwrap(),
            &c.nf4_deq,
        );
    }
}

#[test]
fn host_int8_matches_bitsandbytes() {
    for c in &fixture().cases {
        let h = Int8Host::quantize(&c.w, c.n, c.k).unwrap();
        assert_eq!(h.codes, c.int8_codes, "{}: int8 codes", c.name);
        assert_bits(&format!("{}: int8 stats", c.name), &h.stats, &c.int8_stats);
        assert_bits(
            &format!("{}: int8 dequantize", c.name),
            &h.dequantize(),
            &c.int8_deq,
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
        int8_dequantize_into(&y, &Int8Weight::from_host(&gpu, &bnb_int8(c)).unwrap()).unwrap();
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
    let d = nf4_dequantize(&Nf4Weight::from_host(&small, &bnb_nf4(c)).unwrap()).unwrap();
    assert_bits("chunked NF4 dequantize", &d.to_vec().unwrap(), &c.nf4_deq);
    let q8 = int8_quantize(&w).unwrap();
    assert_eq!(q8.to_host().unwrap(), bnb_int8(c));
    let d8 = int8_dequantize(&q8).unwrap();
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
