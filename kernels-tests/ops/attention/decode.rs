//! Decoding one token (Tq = 1) on a CPU adapter: the default variant's
//! one-query-row-per-lane kernel against the named CPU variants, bit for bit
//! (to rounding on a GPU adapter), and against the f64 reference.

use super::*;

/// Decoding (Tq = 1) on a CPU adapter: the default variant runs one query
/// row per lane across (b, h) (`attention_forward_rows`) where that gives
/// the numbers of the kernel it replaces; its out and lse equal the Cpu
/// variant's (one workgroup per row) bit for bit, and the subgroup
/// variant's up to D = 32, over left padding, grouped-query heads and rows
/// that fill a workgroup partly.
#[test]
fn attention_decoding_rows_equal_the_cpu_variants_bit_for_bit() {
    let decode = |b: usize, h: usize, hkv: usize, d: usize, pads: Vec<usize>| Case {
        tq: 1,
        tk: 11,
        tcap: 14,
        hkv,
        pads: Some(pads),
        ..case(b, 1, h, d)
    };
    for c in [
        decode(5, 3, 3, 32, vec![0, 3, 1, 10, 2]),
        decode(3, 4, 2, 64, vec![4, 0, 7]),
        decode(1, 1, 1, 16, vec![0]),
    ] {
        let auto = check(&c, 31, AttnVariant::Auto);
        // Past D = 32 an adapter with subgroups keeps the subgroup kernel.
        let variants = if gpu().subgroup_min_size() >= 8 && c.d > 32 {
            vec![AttnVariant::CpuSubgroup]
        } else {
            vec![AttnVariant::Cpu, AttnVariant::CpuSubgroup]
        };
        for variant in variants {
            let x = c.data(31);
            let (q, k, v, mask) = uploads(&c, &x);
            let (out, lse) =
                attention_forward(AttnInputs::new(&q, &k, &v, mask.as_ref()), &c.opts(variant))
                    .unwrap();
            let (out, lse) = (out.to_vec().unwrap(), lse.to_vec().unwrap());
            if gpu().is_cpu() {
                assert_eq!(out, auto[0], "{variant:?} out {c:?}");
                assert_eq!(lse, auto[1], "{variant:?} lse {c:?}");
            } else {
                // On a GPU adapter Auto is another kernel, and its compiler
                // contracts a·b + c into fma where it likes (WGSL allows
                // it), so the variants agree to rounding, not bit for bit.
                let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                assert_close(
                    &format!("{variant:?} out {c:?}"),
                    &out,
                    &wide(&auto[0]),
                    1e-6,
                    1e-6,
                );
                assert_close(
                    &format!("{variant:?} lse {c:?}"),
                    &lse,
                    &wide(&auto[1]),
                    1e-6,
                    1e-6,
                );
            }
        }
    }
}
