//! Host side of the LoRA epilogue (`shaders/common/lora_epilogue.wgsl`): the
//! term `scale·U·Vᵀ` that a product kernel adds to each output element of
//! `C [M, N]` before its one store.
//!
//! The one shared mechanism for every kernel that computes `x·op(W)`
//! (matmul_cpu, matmul, qmatmul_int8 and qmatmul_nf4). A kernel that adopts it
//! 1. includes `common/lora_epilogue` and ends its params struct with
//!    `lora: LoraEpilogue` (Rust: a [`LoraEpilogueParams`] field),
//! 2. adds the term in registers when the override `LORA` is true,
//! 3. on the host: [`LowRank::bind`] for the params, bindings and constants, or
//!    [`dummy_binds`] when there is no term (the shader's bindings 10 and 11
//!    are statically used, so non-LoRA pipelines bind a harmless range there;
//!    their code is unchanged since `LORA = false` removes the branch),
//! 4. when it splits a problem into sub-problems (binding-limit chunking),
//!    [`LowRank::shifted`] to the sub-problem's first row / column, and drops
//!    the term from K chunks after the first (like a bias).

use anyhow::{ensure, Result};

use crate::kernel::{as_vec4, Bind};
use crate::tensor::{DType, Tensor};

/// Binding of U in every kernel that includes the epilogue.
pub const U_BINDING: u32 = 10;
/// Binding of V.
pub const V_BINDING: u32 = 11;

/// Mirrors `LoraEpilogue` in `shaders/common/lora_epilogue.wgsl` (32 bytes,
/// the last member of a kernel's params struct).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LoraEpilogueParams {
    pub u_off: u32,
    pub ldu: u32,
    pub v_off: u32,
    pub ldv: u32,
    pub rank: u32,
    pub scale: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// A low-rank term `scale·U·Vᵀ` for an output `[M, N]`: U is `[M, r]`
/// (row-major), V is `[N, r]`, or `[r, N]` with `v_t`. f32 only.
#[derive(Clone, Copy, Debug)]
pub struct LowRank<'t> {
    pub u: &'t Tensor,
    pub v: &'t Tensor,
    pub v_t: bool,
    pub scale: f32,
    rank: usize,
    /// Output rows / columns the views cover (shrink in sub-problems).
    m: usize,
    n: usize,
    /// Element offsets of U's row 0 and V's column 0 (move in sub-problems).
    u_off: usize,
    v_off: usize,
}

impl<'t> LowRank<'t> {
    pub fn new(u: &'t Tensor, v: &'t Tensor, v_t: bool, scale: f32) -> Result<LowRank<'t>> {
        let (su, sv) = (u.shape(), v.shape());
        ensure!(
            u.dtype() == DType::F32 && v.dtype() == DType::F32 && su.len() == 2 && sv.len() == 2,
            "LoRA epilogue needs 2-D f32 U and V, got {u:?} and {v:?}"
        );
        let (n, rv) = if v_t { (sv[1], sv[0]) } else { (sv[0], sv[1]) };
        ensure!(
            su[1] == rv && rv > 0,
            "LoRA epilogue: U {u:?} and V {v:?} (v_t {v_t}) disagree on the rank"
        );
        Ok(LowRank {
            u,
            v,
            v_t,
            scale,
            rank: rv,
            m: su[0],
            n,
            u_off: 0,
            v_off: 0,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Output rows (M) and columns (N) this term covers.
    pub fn dims(&self) -> (usize, usize) {
        (self.m, self.n)
    }

    /// The term of the sub-problem whose first output row is `dm` and first
    /// column `dn`, `m` rows by `n` columns.
    pub fn shifted(mut self, dm: usize, dn: usize, m: usize, n: usize) -> Self {
        self.u_off += dm * self.rank;
        self.v_off += if self.v_t { dn } else { dn * self.rank };
        self.m = m;
        self.n = n;
        self
    }

    /// Storage element ranges `[lo, hi)` of U and V that the term reads.
    pub fn spans(&self) -> [(usize, usize); 2] {
        let r = self.rank;
        let u = (self.u_off, self.u_off + (self.m.max(1) - 1) * r + r);
        let v = if self.v_t {
            let ldv = self.v.shape()[1];
            (self.v_off, self.v_off + (r - 1) * ldv + self.n.max(1))
        } else {
            (self.v_off, self.v_off + (self.n.max(1) - 1) * r + r)
        };
        [u, v]
    }

    /// Bindings, params and override constants for one dispatch.
    pub fn bind(&self) -> ([Bind<'t>; 2], LoraEpilogueParams, [(&'static str, f64); 3]) {
        let [(ulo, uhi), (vlo, vhi)] = self.spans();
        let (ub, u_off) = self.u.bind_elems(U_BINDING, ulo, uhi);
        let (vb, v_off) = self.v.bind_elems(V_BINDING, vlo, vhi);
        let ldv = if self.v_t {
            self.v.shape()[1]
        } else {
            self.rank
        };
        // vec4 reads along each operand's contiguous axis need 4-aligned starts
        // and strides (the bound ranges start at the binding alignment).
        let vec = self.rank.is_multiple_of(4)
            && u_off.is_multiple_of(4)
            && v_off.is_multiple_of(4)
            && ldv.is_multiple_of(4)
            && ub.offset.is_multiple_of(16)
            && vb.offset.is_multiple_of(16);
        let params = LoraEpilogueParams {
            u_off,
            ldu: self.rank as u32,
            v_off,
            ldv: ldv as u32,
            rank: self.rank as u32,
            scale: self.scale,
            _pad0: 0,
            _pad1: 0,
        };
        let flag = |x: bool| x as u32 as f64;
        let constants = [
            ("LORA", 1.0),
            ("LORA_V_T", flag(self.v_t)),
            ("LORA_VEC", flag(vec)),
        ];
        (
            [as_vec4(ub, U_BINDING), as_vec4(vb, V_BINDING)],
            params,
            constants,
        )
    }
}

/// Bindings 10 and 11 for a dispatch without a low-rank term: `fallback`'s
/// range (any read-only range of the same dispatch) seen as vec4s.
pub fn dummy_binds(fallback: Bind) -> [Bind; 2] {
    let b = as_vec4(fallback, fallback.binding);
    [
        Bind {
            binding: U_BINDING,
            ..b
        },
        Bind {
            binding: V_BINDING,
            ..b
        },
    ]
}
