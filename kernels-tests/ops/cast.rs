//! cast: f32 -> f16 / bf16 and back, bit-exact against the `half` crate on
//! special values, random bit patterns and every 16-bit pattern; odd counts;
//! chunking on a small-binding device.

use crate::common::*;
use engine::ops::cast::{cast, cast_backward, cast_forward, CastParams};
use engine::{DType, Gpu, GpuOptions, Tensor};
use half::{bf16, f16};
use std::sync::Arc;

#[test]
fn params_layout() {
    crate::assert_params_layout!(CastParams, "cast", "CastParams", [n]);
}

/// The raw 32-bit words of a tensor's storage (copied through an I32 tensor).
fn raw_words(t: &Tensor) -> Vec<u32> {
    let gpu = t.gpu();
    let words = (t.bytes() / 4) as usize;
    let out = Tensor::empty(gpu, &[words], DType::I32).unwrap();
    copy_buffer(gpu, t, &out, words);
    out.to_i32_vec().unwrap()[..words]
        .iter()
        .map(|&w| w as u32)
        .collect()
}

fn copy_buffer(gpu: &Arc<Gpu>, src: &Tensor, dst: &Tensor, words: usize) {
    gpu.flush(); // keep program order with what is already recorded
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, words as u64 * 4);
    gpu.queue.submit([enc.finish()]);
}

/// A 16-bit tensor holding exactly these bit patterns.
fn upload_bits16(gpu: &Arc<Gpu>, dtype: DType, bits: &[u16]) -> Tensor {
    let words: Vec<i32> = bits
        .chunks(2)
        .map(|c| (c[0] as u32 | (*c.get(1).unwrap_or(&0) as u32) << 16) as i32)
        .collect();
    let src = Tensor::from_i32(gpu, &[words.len()], &words).unwrap();
    let t = Tensor::empty(gpu, &[bits.len()], dtype).unwrap();
    copy_buffer(gpu, &src, &t, words.len());
    t
}

fn to16(dtype: DType, bits: u32) -> u16 {
    let v = f32::from_bits(bits);
    match dtype {
        DType::F16 => f16::from_f32(v).to_bits(),
        _ => bf16::from_f32(v).to_bits(),
    }
}

fn from16(dtype: DType, h: u16) -> u32 {
    match dtype {
        DType::F16 => f16::from_bits(h).to_f32().to_bits(),
        _ => bf16::from_bits(h).to_f32().to_bits(),
    }
}

/// Special values plus random bit patterns of every class.
fn inputs(rng: &mut Rng, random: usize) -> Vec<u32> {
    let mut v: Vec<u32> = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        1e-40,
        -1e-40,
        1e-5,
        6e-8,
        3e-8,
        2.9e-8,
        65504.0,
        65519.0,
        65520.0,
        -65520.0,
        1e10,
        -1e10,
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        std::f32::consts::PI,
        -std::f32::consts::E,
        1.0 + 1.0 / 2048.0, // f16 halfway: rounds to even (1.0)
        1.0 + 3.0 / 2048.0, // f16 halfway: rounds up
        1.0 + 1.0 / 256.0,  // bf16 halfway: rounds to even
        1.0 + 3.0 / 256.0,  // bf16 halfway: rounds up
        6.097555e-5,
        6.1035156e-5, // around the smallest normal f16
    ]
    .iter()
    .map(|v| v.to_bits())
    .collect();
    v.extend([
        0x7f80_0001,
        0xffc0_0123,
        0x7fbf_ffff,
        0x0000_0001,
        0x8000_0001,
        0x7f7f_ffff,
    ]);
    v.extend((0..random).map(|_| rng.next_u64() as u32));
    v
}

fn check_round_trip(gpu: &Arc<Gpu>, dtype: DType, bits: &[u32]) {
    let n = bits.len();
    let floats: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let x = Tensor::from_f32(gpu, &[n], &floats).unwrap();
    let y = cast_forward(&x, dtype).unwrap();
    assert_eq!((y.dtype(), y.shape()), (dtype, &[n][..]));
    let words = raw_words(&y);
    assert_eq!(words.len(), n.div_ceil(2));
    for (i, &b) in bits.iter().enumerate() {
        let got = (words[i / 2] >> (16 * (i % 2))) as u16;
        assert_eq!(
            got,
            to16(dtype, b),
            "{dtype:?} of {b:#010x} (element {i} of {n})"
        );
    }
    if n % 2 == 1 {
        assert_eq!(
            words[n / 2] >> 16,
            0,
            "odd count: high half of the last word"
        );
    }
    let back = cast_backward(&y).unwrap();
    let back = raw_words(&back);
    for (i, &b) in bits.iter().enumerate() {
        assert_eq!(
            back[i],
            from16(dtype, to16(dtype, b)),
            "{dtype:?} round trip of {b:#010x}"
        );
    }
}

#[test]
fn pack_matches_half_bit_exactly() {
    let gpu = gpu();
    let mut rng = Rng::new(30);
    for dtype in [DType::F16, DType::BF16] {
        check_round_trip(&gpu, dtype, &inputs(&mut rng, 20_001)); // odd count
        check_round_trip(&gpu, dtype, &inputs(&mut rng, 2));
        check_round_trip(&gpu, dtype, &[0x3f80_0000]); // one element
    }
}

#[test]
fn unpack_matches_half_for_every_16_bit_pattern() {
    let gpu = gpu();
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for dtype in [DType::F16, DType::BF16] {
        let t = upload_bits16(&gpu, dtype, &all[..65535]); // odd count
        let got = raw_words(&cast_backward(&t).unwrap());
        for (i, &h) in all[..65535].iter().enumerate() {
            assert_eq!(got[i], from16(dtype, h), "{dtype:?} {h:#06x}");
        }
        let f = t.to_vec().unwrap(); // the host's own widening agrees
        assert!(f
            .iter()
            .zip(&got)
            .all(|(a, &b)| a.to_bits() == b || a.is_nan()));
    }
}

#[test]
fn cast_dispatches_on_dtypes() {
    let x = upload(&[3], &[1.5, -2.25, 1e-3]);
    let h = cast(&x, DType::BF16).unwrap();
    let f = cast(&h, DType::F16).unwrap();
    assert_eq!(f.dtype(), DType::F16);
    let back = cast(&f, DType::F32).unwrap().to_vec().unwrap();
    let want: Vec<f32> = [1.5f32, -2.25, 1e-3]
        .iter()
        .map(|&v| f16::from_f32(bf16::from_f32(v).to_f32()).to_f32())
        .collect();
    assert_eq!(back, want);
    assert!(cast(&Tensor::from_i32(&gpu(), &[1], &[1]).unwrap(), DType::F16).is_err());
}

#[test]
fn chunks_on_a_small_binding_device() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    let mut rng = Rng::new(31);
    for dtype in [DType::F16, DType::BF16] {
        check_round_trip(&small, dtype, &inputs(&mut rng, 5001));
    }
}
