//! Quantized-weight formats on the host (`engine::quant`): the quantizers,
//! dequantizers and tables against bitsandbytes, error budgets, bytes per
//! parameter and weight layouts. The GPU kernels' tests are `ops/qmatmul/`.

mod budgets;
pub mod fixture;
mod host;
