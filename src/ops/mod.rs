//! One module per op. Each pairs with `shaders/<op>.wgsl` (same stem), whose
//! entry points are `<op>_forward` / `<op>_backward`. A module exposes the raw
//! kernels on [`Tensor`](crate::Tensor)s and, for differentiable ops, a
//! function that records on the [`Tape`](crate::Tape).

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
pub mod sample;
pub mod softmax;
pub mod swiglu;
