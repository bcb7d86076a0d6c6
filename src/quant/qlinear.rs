//! `qlinear`: a linear layer over a frozen quantized weight, on the tape.

use super::QuantizedWeight;
use crate::ops::elementwise::Broadcast;
use crate::ops::reduce::sum_broadcast;
use crate::tape::{Tape, Var};
use anyhow::{ensure, Result};

/// `y = x · Wᵀ (+ bias)` for x [.., k], W [n, k] quantized, bias [n].
///
/// Saves nothing but a handle to the weight. Backward returns dx = dy · W
/// and dbias = Σ_rows dy; W is not a `Var`, so it cannot get a gradient.
/// The closure keeps a clone of the weight (shared buffers, no copy).
pub fn qlinear(tape: &Tape, x: &Var, w: &QuantizedWeight, bias: Option<&Var>) -> Result<Var> {
    let (n, k) = w.shape();
    ensure!(
        x.shape().last() == Some(&k),
        "qlinear: x {:?} for a [{n}, {k}] weight",
        x.shape()
    );
    let y = w.forward(x.tensor(), bias.map(|b| b.tensor()))?;
    let w = w.clone();
    let mut inputs = vec![x];
    inputs.extend(bias);
    Ok(tape.record("qlinear", &inputs, y, move |dy, needs| {
        let dx = if needs[0] {
            Some(w.backward(dy)?)
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
