//! The LoRA linear on the tape, for every base (see [`super::LoraBase`]).

use anyhow::Result;

use super::{lora_backward, lora_forward_onto, LoraBase, LoraDropout, LoraSpec};
use crate::quant::QuantizedWeight;
use crate::tape::{Tape, Var};

/// Records a LoRA linear on the tape: `y = x·op(W) (+ bias) +
/// scale·(dropout(x)·Aᵀ)·Bᵀ`, shapes as in the module docs. `w` is normally a
/// constant (frozen base weight); it gets a gradient only if it requires one.
/// `dropout` is `(p, seed, offset)` as in [`LoraDropout`].
#[allow(clippy::too_many_arguments)]
pub fn lora_linear(
    tape: &Tape,
    x: &Var,
    w: &Var,
    bias: Option<&Var>,
    a: &Var,
    b: &Var,
    scale: f32,
    trans_b: bool,
    dropout: Option<LoraDropout>,
) -> Result<Var> {
    dense(tape, x, w, bias, [a, b], (scale, trans_b, dropout), None)
}

/// QLoRA: the LoRA linear over a frozen int8 / NF4 weight `[N, K]`, fused
/// (one pass of the dequantizing kernel per product, the low-rank term in its
/// epilogue). Gradients flow to x, the bias, A and B; `spec.trans_b` is unused.
pub fn qlora_linear(
    tape: &Tape,
    spec: &LoraSpec,
    x: &Var,
    w: &QuantizedWeight,
    bias: Option<&Var>,
    a: &Var,
    b: &Var,
) -> Result<Var> {
    lora_linear_on(tape, spec, &LoraBase::quantized(w), None, x, bias, a, b)
}

/// The LoRA linear on any base. `w_var` is the tape variable of a dense base's
/// weight (None for a quantized base, which is not a `Var`).
#[allow(clippy::too_many_arguments)]
pub fn lora_linear_on(
    tape: &Tape,
    spec: &LoraSpec,
    base: &LoraBase,
    w_var: Option<&Var>,
    x: &Var,
    bias: Option<&Var>,
    a: &Var,
    b: &Var,
) -> Result<Var> {
    record(tape, spec, base, w_var, x, bias, [a, b], None)
}

/// [`lora_linear`], plus `onto` when given, as one node (a residual
/// connection whose add is the product's store; see
/// [`super::lora_forward_onto`]): the same numbers as adding the output to
/// `onto`, and the backward gives `onto` the output gradient itself, as the
/// add's does.
#[allow(clippy::too_many_arguments)]
pub fn lora_linear_onto(
    tape: &Tape,
    x: &Var,
    w: &Var,
    bias: Option<&Var>,
    a: &Var,
    b: &Var,
    scale: f32,
    trans_b: bool,
    dropout: Option<LoraDropout>,
    onto: Option<&Var>,
) -> Result<Var> {
    dense(tape, x, w, bias, [a, b], (scale, trans_b, dropout), onto)
}

/// The LoRA linear over an f32 base weight `w` (a tape variable).
fn dense(
    tape: &Tape,
    x: &Var,
    w: &Var,
    bias: Option<&Var>,
    ab: [&Var; 2],
    (scale, trans_b, dropout): (f32, bool, Option<LoraDropout>),
    onto: Option<&Var>,
) -> Result<Var> {
    let spec = LoraSpec {
        dropout,
        ..LoraSpec::new(scale, trans_b)
    };
    let base = LoraBase::dense(w.tensor(), spec.trans_b);
    record(tape, &spec, &base, Some(w), x, bias, ab, onto)
}

#[allow(clippy::too_many_arguments)]
fn record(
    tape: &Tape,
    spec: &LoraSpec,
    base: &LoraBase,
    w_var: Option<&Var>,
    x: &Var,
    bias: Option<&Var>,
    [a, b]: [&Var; 2],
    onto: Option<&Var>,
) -> Result<Var> {
    let [xt, at, bt] = [x, a, b].map(|v| v.tensor().clone());
    let bias_t = bias.map(|v| v.tensor());
    let (y, xa) = lora_forward_onto(spec, base, &xt, bias_t, &at, &bt, onto.map(|o| o.tensor()))?;
    let (has_w, has_bias, has_onto) = (w_var.is_some(), bias.is_some(), onto.is_some());
    let mut inputs = vec![x];
    inputs.extend(w_var);
    inputs.extend(bias);
    inputs.extend([a, b]);
    inputs.extend(onto);
    let (spec, base) = (*spec, base.clone());
    let name = if has_onto {
        "lora_linear_onto"
    } else {
        "lora_linear"
    };
    Ok(tape.record(name, &inputs, y, move |dy, needs| {
        // Positions of W and the bias among the inputs, when present.
        let iw = 1;
        let ib = iw + has_w as usize;
        let ia = ib + has_bias as usize;
        let want = [
            needs[0],
            has_w && needs[iw],
            has_bias && needs[ib],
            needs[ia],
            needs[ia + 1],
        ];
        let g = lora_backward(&spec, &base, dy, &xt, &at, &bt, &xa, want)?;
        let mut grads = vec![g.dx];
        if has_w {
            grads.push(g.dw);
        }
        if has_bias {
            grads.push(g.dbias);
        }
        grads.extend([g.da, g.db]);
        if has_onto {
            grads.push(Some(dy.clone()));
        }
        Ok(grads)
    }))
}
