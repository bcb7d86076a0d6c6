//! qmatmul_int8: forward, backward and the tape function against an f64
//! reference from the bnb-exact dequantized weight. Quantize / dequantize
//! parity with bitsandbytes is in `quantize.rs`.

use super::quantize::{check_qlinear_grads, check_qmatmul, check_qmatmul_chunking};
use engine::ops::qmatmul_int8::qmatmul_int8_forward_into;
use engine::quant::{QuantFormat, QuantizedWeight};

#[test]
fn forward_and_backward() {
    check_qmatmul(QuantFormat::Int8, &|y, x, w, b| match w {
        QuantizedWeight::Int8(w) => qmatmul_int8_forward_into(y, x, w, b, None).unwrap(),
        _ => unreachable!(),
    });
}

#[test]
fn qlinear_gradients() {
    check_qlinear_grads(QuantFormat::Int8);
}

#[test]
fn chunking_and_split_reduction() {
    check_qmatmul_chunking(QuantFormat::Int8);
}
