//! Launching one [`Gemm`] that fits: the kernel and its form for the
//! shape (a narrow product transposed, one register Block for a short one),
//! the bindings, params and pipeline constants.

use anyhow::Result;

use super::{Dim, Gemm, View};
use crate::kernel::{as_vec4, Bind, Kernel};
use crate::ops::lora::epilogue::dummy_binds;
use crate::ops::matmul::{MatmulParams, MatmulVariant};

impl<'t> Gemm<'t> {
    /// The same problem as Cᵀ = op(B)ᵀ·op(A)ᵀ, stored back transposed, when
    /// the CPU kernels would waste most of their lanes on it: they give each
    /// lane 8 columns and each workgroup 64, so a product 16 columns wide
    /// (LoRA's U = x·Aᵀ, its dU and dB) leaves three quarters of the lanes on
    /// clamped columns, while its transpose is 16 rows tall (one register
    /// Block, no waste). Element (m, n) is the same sum either way: the same
    /// products (a·b = b·a) added in the same order of k, 4 steps at a time,
    /// so the output is bit-identical. Not with a bias (a per-column add) or
    /// a LoRA epilogue.
    pub(super) fn narrow_as_transposed(&self, variant: MatmulVariant) -> Option<Gemm<'t>> {
        let (stem, ..) = self.kernel(variant);
        if !stem.starts_with("matmul_cpu") || self.tc || self.bias.is_some() || self.lora.is_some()
        {
            return None;
        }
        let swapped = Gemm {
            a: self.b,
            b: self.a,
            ta: !self.tb,
            tb: !self.ta,
            m: self.n,
            n: self.m,
            tc: true,
            ..*self
        };
        // Output elements computed, real or clamped.
        let work = |g: &Gemm| {
            let (_, rows, cols, _) = g.kernel(variant);
            g.m.next_multiple_of(rows) * g.n.next_multiple_of(cols)
        };
        (work(&swapped) < work(self)).then_some(swapped)
    }

    /// The kernel for this problem: (shader stem, output rows and columns
    /// per workgroup, whether it is the subgroup kernel's one-Block form).
    /// One Block of 16 rows serves products at most 16 rows tall, and those
    /// 33 to 48 tall (decoding's batch), where two Blocks per workgroup would
    /// compute 64 rows for 48: three workgroup rows of 16 measured 4-6%
    /// faster there at K = 128..512, N = 128..2048 on llvmpipe (17-32 rows
    /// and 49 up stay faster with two). Each row is the same sum either way.
    pub(super) fn kernel(&self, variant: MatmulVariant) -> (&'static str, usize, usize, bool) {
        let (stem, rows, cols) = variant.kernel(self.c.t.gpu());
        let one_block = self.m <= rows / 2 || (self.m > rows && self.m <= rows + rows / 2);
        if stem == "matmul_cpu_subgroup" && one_block {
            return (stem, rows / 2, cols, true);
        }
        (stem, rows, cols, false)
    }

    pub(super) fn dispatch(&self, variant: MatmulVariant) -> Result<()> {
        let gpu = self.c.t.gpu();
        let (stem, rows_per_group, cols_per_group, one_block) = self.kernel(variant);
        let bind = |v: View<'t>, binding, rows: Dim, cols: Dim| {
            let nb = if v.bs == 0 { 1 } else { self.batch };
            let nr = if rows == Dim::Batch {
                1
            } else {
                self.size(rows)
            };
            let (lo, hi) = v.span(nb, nr, self.size(cols));
            v.t.bind_elems(binding, lo, hi)
        };
        let ops = self.operands();
        let (a, a_off) = bind(ops[0].0, 1, ops[0].1, ops[0].2);
        let (b, b_off) = bind(ops[1].0, 2, ops[1].1, ops[1].2);
        let (c, c_off) = bind(ops[2].0, 4, ops[2].1, ops[2].2);
        // Without a bias, binding 3 gets A's range again (both read-only).
        let (bias, bias_off) = match ops.get(3) {
            Some(o) => bind(o.0, 3, o.1, o.2),
            None => (Bind { binding: 3, ..a }, 0),
        };
        let u = |x: usize| x as u32;
        let mut params = MatmulParams {
            m: u(self.m),
            n: u(self.n),
            k: u(self.k),
            batch: u(self.batch),
            a_off,
            lda: u(self.a.ld),
            a_bs: u(self.a.bs),
            accumulate: u(self.accumulate as usize),
            b_off,
            ldb: u(self.b.ld),
            b_bs: u(self.b.bs),
            has_bias: u(self.bias.is_some() as usize),
            c_off,
            ldc: u(self.c.ld),
            c_bs: u(self.c.bs),
            bias_off,
            lora: Default::default(),
        };
        let flag = |x: bool| x as u32 as f64;
        let mut constants = vec![("TRANS_A", flag(self.ta)), ("TRANS_B", flag(self.tb))];
        if stem.starts_with("matmul_cpu") {
            // Aligned operands are read (C written) as vec4s (bindings 5..7);
            // a flag whose code never runs (no K loop below K = 4, no whole
            // quads below 4 along C's storage rows: N, or M when C is stored
            // transposed) keeps the common pipeline: one less compile.
            let quads_along = if self.tc { self.m } else { self.n };
            let (no_loop, no_quad) = (self.k < 4, quads_along < 4);
            constants.push(("VEC_A", flag(no_loop || vec_ok(&a, a_off, &self.a))));
            constants.push(("VEC_B", flag(no_loop || vec_ok(&b, b_off, &self.b))));
            constants.push(("VEC_C", flag(no_quad || vec_ok(&c, c_off, &self.c))));
            if self.tc {
                constants.push(("TRANS_C", 1.0));
            }
            if one_block {
                constants.push(("BLOCKS", 1.0));
            }
        }
        // The LoRA epilogue's bindings; without a term they get A's range and
        // the constants stay as they were (the same pipeline as before).
        let [lu, lv] = match &self.lora {
            Some(l) => {
                let (binds, lp, consts) = l.bind();
                params.lora = lp;
                constants.extend(consts);
                binds
            }
            None => dummy_binds(a),
        };
        let vec4s = [as_vec4(a, 5), as_vec4(b, 6), as_vec4(c, 7)];
        let binds = [a, b, bias, c, vec4s[0], vec4s[1], vec4s[2], lu, lv];
        gpu.dispatch(
            &Kernel::new(stem, "matmul_forward").with(&constants),
            &params,
            &binds,
            [
                u(self.n.div_ceil(cols_per_group)),
                u(self.m.div_ceil(rows_per_group)),
                u(self.batch),
            ],
        )
    }
}

/// True when a view's elements can be read as aligned vec4s.
fn vec_ok(bind: &Bind, residual: u32, v: &View) -> bool {
    bind.offset.is_multiple_of(16)
        && residual.is_multiple_of(4)
        && v.ld.is_multiple_of(4)
        && v.bs.is_multiple_of(4)
}
