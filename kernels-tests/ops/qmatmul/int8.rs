//! qmatmul on int8 weights: forward, backward and the tape function against an f64
//! reference from the bnb-exact dequantized weight, by each kernel path.
//! Quantize / dequantize parity with bitsandbytes is in `quantize.rs`.

use super::{check_qlinear_grads, check_qmatmul, check_qmatmul_chunking};
use engine::ops::qmatmul::QgemmPath;
use engine::quant::QuantFormat;

#[test]
fn forward_and_backward_fused() {
    check_qmatmul(QuantFormat::Int8, QgemmPath::Fused);
}

#[test]
fn forward_and_backward_staged() {
    check_qmatmul(QuantFormat::Int8, QgemmPath::Staged);
}

#[test]
fn qlinear_gradients() {
    check_qlinear_grads(QuantFormat::Int8);
}

#[test]
fn chunking_and_split_reduction() {
    check_qmatmul_chunking(QuantFormat::Int8, QgemmPath::Fused);
    check_qmatmul_chunking(QuantFormat::Int8, QgemmPath::Staged);
}
