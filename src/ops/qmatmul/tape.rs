//! `qlinear`: a linear layer over a frozen quantized weight, on the tape.
//!
//! ```text
//! y = x · Wᵀ (+ bias)        dx = dy · W        dbias = Σ_rows dy
//! ```

use anyhow::{ensure, Result};

use super::format::QgemmWeight;
use super::path::{qmatmul_backward, qmatmul_forward};
use crate::ops::elementwise::Broadcast;
use crate::ops::reduce::sum_broadcast;
use crate::quant::QuantizedWeight;
use crate::tape::{Tape, Var};

/// `y = x · Wᵀ (+ bias)` for x [.., k], W [n, k] quantized, bias [n].
///
/// Saves nothing but a handle to the weight. Backward returns dx = dy · W
/// and dbias = Σ_rows dy; W is not a `Var`, so it cannot get a gradient.
/// The closure keeps a clone of the weight (shared buffers, no copy).
pub fn qlinear(tape: &Tape, x: &Var, w: &QuantizedWeight, bias: Option<&Var>) -> Result<Var> {
    let (n, k) = w.dims();
    ensure!(
        x.shape().last() == Some(&k),
        "qlinear: x {:?} for a [{n}, {k}] weight",
        x.shape()
    );
    let y = qmatmul_forward(x.tensor(), w, bias.map(|b| b.tensor()))?;
    let w = w.clone();
    let mut inputs = vec![x];
    inputs.extend(bias);
    Ok(tape.record("qlinear", &inputs, y, move |dy, needs| {
        let dx = if needs[0] {
            Some(qmatmul_backward(dy, &w)?)
        } else {
            None
        };
        let mut grads = vec![dx];
        if needs.len() > 1 {
            grads.push(if needs[1] {
                Some(sum_broadcast(dy, Broadcast { div: 1, modulo: n })?)
            } else {
                None
            });
        }
        Ok(grads)
    }))
}
