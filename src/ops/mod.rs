//! One module per op. Each pairs with `shaders/<op>.wgsl` (same stem), whose
//! entry points are `<op>_forward` / `<op>_backward`. A module exposes the raw
//! kernels on [`Tensor`](crate::Tensor)s and, for differentiable ops, a
//! function that records on the [`Tape`](crate::Tape).

/// Tape functions that only fix the op of a general one (`exp(tape, x)` is
/// `unary(tape, UnaryOp::Exp, x)`): one line per name instead of a function
/// body each. Written `name(tape, args..) = body;`, each with its own docs.
macro_rules! fixed_op_fns {
    ($($(#[$doc:meta])* $name:ident($tape:ident, $($arg:ident),+) = $body:expr;)+) => {
        $(
            $(#[$doc])*
            pub fn $name(
                $tape: &crate::tape::Tape,
                $($arg: &crate::tape::Var),+
            ) -> anyhow::Result<crate::tape::Var> {
                $body
            }
        )+
    };
}

use crate::device::Gpu;
use crate::kernel::{elem_chunks, groups_1d, Bind, Kernel};

/// The loop of every elementwise op: one dispatch of `kernel` per
/// binding-sized chunk `[lo, hi)` of `n` elements, `wg` elements per
/// workgroup; `chunk(lo, hi)` gives that chunk's params and bindings.
pub(crate) fn dispatch_elem_chunks<'a, P: bytemuck::Pod>(
    gpu: &Gpu,
    kernel: &Kernel,
    n: usize,
    wg: u32,
    mut chunk: impl FnMut(usize, usize) -> (P, Vec<Bind<'a>>),
) -> anyhow::Result<()> {
    for (lo, hi) in elem_chunks(gpu, n) {
        let (params, binds) = chunk(lo, hi);
        let groups = groups_1d(gpu, ((hi - lo) as u32).div_ceil(wg));
        gpu.dispatch(kernel, &params, &binds, groups)?;
    }
    Ok(())
}

pub mod adamw;
pub mod attention;
pub mod cast;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod entropy;
pub mod gelu;
pub mod grad_clip;
pub mod head_slice;
pub mod layernorm;
pub mod lora;
pub mod matmul;
pub mod qkv_heads;
pub mod qmatmul;
pub mod reduce;
pub mod rmsnorm;
pub mod rotary;
pub mod row_gather;
pub mod sample;
pub mod softmax;
pub mod swiglu;
