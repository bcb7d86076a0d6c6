//! rope_scaling: the inverse-frequency and cos/sin tables of every RoPE type
//! against an f64 host implementation of transformers' formulas (v4.46
//! `modeling_rope_utils.py`), config parsing, and the Llama rotation (full
//! head dim, scaled table) forward, backward and through the tape.

use crate::common::*;
use engine::ops::rotary::*;
use engine::Tensor;
use serde_json::json;
use std::f64::consts::PI;

/// transformers' inv_freq for `s`, all in f64.
fn inv_freq_f64(s: &RopeScaling, dim: usize, base: f64, seq_len: usize) -> Vec<f64> {
    let default = |base: f64| -> Vec<f64> {
        (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f64 / dim as f64))
            .collect()
    };
    match *s {
        RopeScaling::Default => default(base),
        RopeScaling::Linear { factor } => default(base).iter().map(|f| f / factor).collect(),
        RopeScaling::Dynamic {
            factor,
            max_position_embeddings: m,
        } => {
            let l = seq_len.max(m) as f64;
            let d = dim as f64;
            default(base * (factor * l / m as f64 - (factor - 1.0)).powf(d / (d - 2.0)))
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor: lo,
            high_freq_factor: hi,
            original_max_position_embeddings: orig,
        } => default(base)
            .iter()
            .map(|&inv| {
                let wavelen = 2.0 * PI / inv;
                if wavelen < orig as f64 / hi {
                    inv
                } else if wavelen > orig as f64 / lo {
                    inv / factor
                } else {
                    let s = (orig as f64 / wavelen - lo) / (hi - lo);
                    (1.0 - s) * inv / factor + s * inv
                }
            })
            .collect(),
    }
}

fn llama31() -> RopeScaling {
    RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    }
}

/// (scaling, head_dim, rotary_pct, rope_theta, table positions) covering
/// every type, NeoX-style partial rotation and an explicit odd head_dim.
fn configs() -> Vec<(RopeScaling, usize, f64, f64, usize)> {
    let dynamic = RopeScaling::Dynamic {
        factor: 2.0,
        max_position_embeddings: 48,
    };
    vec![
        (RopeScaling::Default, 128, 1.0, 500000.0, 40),
        (RopeScaling::Default, 64, 0.25, 10000.0, 33),
        (RopeScaling::Linear { factor: 4.0 }, 96, 1.0, 10000.0, 29),
        (dynamic.clone(), 64, 1.0, 10000.0, 40), // L <= M: the plain table
        (dynamic.clone(), 64, 1.0, 10000.0, 100), // L > M: NTK base
        (dynamic, 80, 0.5, 10000.0, 77),
        (llama31(), 128, 1.0, 500000.0, 50),
        // Small original context: many frequencies in the smooth band.
        (
            RopeScaling::Llama3 {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 8.0,
                original_max_position_embeddings: 256,
            },
            72,
            1.0,
            10000.0,
            20,
        ),
    ]
}

#[test]
fn rope_tables_match_transformers_formulas_in_f64() {
    let gpu = gpu();
    for (s, head_dim, pct, theta, npos) in configs() {
        let what = format!("{s:?} D={head_dim} pct={pct} P={npos}");
        let t = RotaryTable::new_scaled(&gpu, head_dim, pct, theta, &s, npos).unwrap();
        let dim = (head_dim as f64 * pct) as usize;
        assert_eq!(t.rot_dim, dim);
        let want = inv_freq_f64(&s, dim, theta, npos);
        // f32 pow/division vs f64: a few ulps.
        assert_close(&format!("{what} inv_freq"), &t.inv_freq, &want, 0.0, 1e-6);
        // cos/sin of transformers' f32 angle (pos · f32 inv_freq, rounded
        // once), correctly rounded to f32.
        let mut cs = Vec::new();
        for pos in 0..npos {
            let a: Vec<f64> = t
                .inv_freq
                .iter()
                .map(|&f| (pos as f32 * f) as f64)
                .collect();
            cs.extend(a.iter().map(|a| a.cos()));
            cs.extend(a.iter().map(|a| a.sin()));
        }
        assert_close(
            &format!("{what} cos/sin"),
            &t.cos_sin.to_vec().unwrap(),
            &cs,
            6e-8,
            0.0,
        );
    }
}

#[test]
fn llama31_frequencies_are_kept_divided_and_blended() {
    // Llama 3.1 8B: head_dim 128, theta 5e5. The fastest frequencies
    // (wavelength < 2048) are unchanged, the slowest (> 8192) divided by 8.
    let inv = llama31().inv_freq(128, 500000.0, 1);
    let plain = RopeScaling::Default.inv_freq(128, 500000.0, 1);
    assert_eq!(inv[0], 1.0);
    assert_eq!(inv[..20], plain[..20]);
    assert_eq!(inv[63], plain[63] / 8.0);
    let blended = (0..64).filter(|&i| inv[i] != plain[i] && inv[i] != plain[i] / 8.0);
    assert!(blended.count() >= 3, "some frequencies are interpolated");
}

#[test]
fn rope_scaling_parses_hf_configs() {
    let p = |v: serde_json::Value| RopeScaling::from_hf(Some(&v), 2048);
    assert_eq!(
        RopeScaling::from_hf(None, 2048).unwrap(),
        RopeScaling::Default
    );
    assert_eq!(
        RopeScaling::from_hf(Some(&serde_json::Value::Null), 2048).unwrap(),
        RopeScaling::Default
    );
    assert_eq!(
        p(json!({"type": "linear", "factor": 2.0})).unwrap(),
        RopeScaling::Linear { factor: 2.0 }
    );
    assert_eq!(
        p(json!({"rope_type": "dynamic", "factor": 4})).unwrap(),
        RopeScaling::Dynamic {
            factor: 4.0,
            max_position_embeddings: 2048
        }
    );
    let l3 = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
    assert_eq!(p(l3).unwrap(), llama31());
    assert_eq!(
        p(json!({"rope_type": "default", "rope_theta": 1e4})).unwrap(),
        RopeScaling::Default
    );
    let err = |v| format!("{:#}", p(v).unwrap_err());
    assert!(err(json!({"rope_type": "yarn", "factor": 4.0})).contains("yarn"));
    assert!(err(json!({"rope_type": "llama3", "factor": 8.0})).contains("low_freq_factor"));
    assert!(err(json!({"factor": 8.0})).contains("rope_type"));
    assert!(err(json!({"type": "linear", "factor": 0.5})).contains("factor"));
}

/// f64 rotate_half rotation of x [BT, H, D] over the full head dim with the
/// table's f32 angles; `sign` -1 is the transposed rotation.
fn rotate_ref(x: &[f32], pos: &[i32], h: usize, d: usize, inv: &[f32], sign: f64) -> Vec<f64> {
    let half = d / 2;
    let mut out = vec![0.0; x.len()];
    for (tok, &p) in pos.iter().enumerate() {
        for hh in 0..h {
            let o = (tok * h + hh) * d;
            for i in 0..half {
                let a = (p as f32 * inv[i]) as f64;
                let (s, c) = (sign * a.sin(), a.cos());
                let (x1, x2) = (x[o + i] as f64, x[o + i + half] as f64);
                out[o + i] = x1 * c - x2 * s;
                out[o + i + half] = x2 * c + x1 * s;
            }
        }
    }
    out
}

#[test]
fn llama_rotation_with_scaled_tables_matches_f64() {
    let gpu = gpu();
    let mut rng = Rng::new(61);
    for (s, d) in [
        (llama31(), 128usize),
        (RopeScaling::Linear { factor: 2.0 }, 24),
    ] {
        let table = RotaryTable::new_scaled(&gpu, d, 1.0, 500000.0, &s, 37).unwrap();
        for (b, t, h) in [(2usize, 7usize, 3usize), (1, 1, 5)] {
            let n = b * t * h * d;
            let pos: Vec<i32> = (0..b * t).map(|i| (i * 5 % 37) as i32).collect();
            let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
            let x = rng.vec(n, 2.0);
            let out = poisoned(&[b, t, h, d]);
            rotary_into(
                Rotation::Forward,
                &out,
                &upload(&[b, t, h, d], &x),
                &tpos,
                &table,
            )
            .unwrap();
            let want = rotate_ref(&x, &pos, h, d, &table.inv_freq, 1.0);
            assert_close(
                &format!("{s:?} fwd T={t}"),
                &out.to_vec().unwrap(),
                &want,
                1e-6,
                1e-6,
            );
            let dx = poisoned(&[b, t, h, d]);
            rotary_into(
                Rotation::Backward,
                &dx,
                &upload(&[b, t, h, d], &x),
                &tpos,
                &table,
            )
            .unwrap();
            let want = rotate_ref(&x, &pos, h, d, &table.inv_freq, -1.0);
            assert_close(
                &format!("{s:?} bwd T={t}"),
                &dx.to_vec().unwrap(),
                &want,
                1e-6,
                1e-6,
            );
        }
    }
}

#[test]
fn llama_rotation_tape_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(62);
    let (b, t, h, d) = (1, 3, 2, 8);
    let s = RopeScaling::Dynamic {
        factor: 2.0,
        max_position_embeddings: 4,
    };
    let table = RotaryTable::new_scaled(&gpu, d, 1.0, 10000.0, &s, 9).unwrap();
    let tpos = Tensor::from_i32(&gpu, &[b, t], &[2, 5, 8]).unwrap();
    check_grads(
        "llama rotary",
        &[(vec![b, t, h, d], rng.vec(b * t * h * d, 1.0))],
        1e-2,
        1e-3,
        |tape, v| rotary(tape, &v[0], &tpos, &table).unwrap(),
    );
}
