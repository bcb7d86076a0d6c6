//! The bitsandbytes 0.50.2 reference (made by
//! `kernels-tests/fixtures/make_quant_fixtures.py`): one case per weight with
//! bnb's NF4 and int8 states and dequantized values, plus helpers to compare
//! against it bit for bit.

use engine::quant::tables::dynamic_map;
use engine::quant::{Int8Host, Nf4Host};
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
pub fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
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
