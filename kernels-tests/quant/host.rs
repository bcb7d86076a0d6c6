//! The host quantizers and dequantizers (`engine::quant::{nf4, int8}`) and
//! their tables against bitsandbytes: host quantize == bnb's codes, host
//! dequantize == bnb bit for bit.

use super::fixture::{assert_bits, bnb_nf4, fixture, max_ulps};
use crate::common::*;
use engine::quant::nf4::{absmax_mean, quantize_blocks};
use engine::quant::tables::{dynamic_map, nf4_code, DYNAMIC_MAP_BITS, NF4_BITS};
use engine::quant::{Int8Host, Nf4Host};

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
