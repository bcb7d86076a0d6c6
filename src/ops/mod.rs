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
pub mod qmatmul;
pub mod reduce;
pub mod rmsnorm;
pub mod rotary;
pub mod row_gather;
pub mod softmax;
pub mod swiglu;
