//! Two layer norms of the same input in one pass, inference only (tensors
//! in, tensors out: it cannot join the tape). GPT-NeoX's parallel residual
//! normalises every block input twice, once for attention and once for the
//! MLP; decoding a token paid a dispatch for each. The row-per-invocation
//! kernel (`layernorm_pair_forward4`) computes each row's statistics once and
//! writes both outputs, every element the single norm's value bit for bit.
//! Where that kernel does not apply (GPU adapters take the subgroup variant,
//! or C and the chunks are not whole vec4s) it runs the two norms.

use anyhow::{ensure, Result};

use super::{check_f32, layernorm_forward_into, params, row_chunks, LayerNormOutput};
use super::{LayerNormVariant, ROW_WG};
use crate::kernel::{as_vec4, groups_1d, Kernel};
use crate::tensor::{DType, Tensor};

/// `[layernorm(x; w1, b1), layernorm(x; w2, b2)]`, each shaped like x.
pub fn layernorm_pair_forward(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
    eps: f32,
) -> Result<[Tensor; 2]> {
    let gpu = x.gpu();
    let y1 = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let y2 = Tensor::empty(gpu, x.shape(), DType::F32)?;
    layernorm_pair_forward_into(x, (w1, b1), (w2, b2), eps, [&y1, &y2])?;
    Ok([y1, y2])
}

/// [`layernorm_pair_forward`] into caller-given outputs with x's element count.
pub fn layernorm_pair_forward_into(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
    eps: f32,
    [y1, y2]: [&Tensor; 2],
) -> Result<()> {
    let (n, c) = (x.rows(), x.cols());
    check_f32("layernorm", "x", x, n * c)?;
    for (what, t) in [
        ("weight", w1),
        ("bias", b1),
        ("second weight", w2),
        ("second bias", b2),
    ] {
        check_f32("layernorm", what, t, c)?;
    }
    for (what, y) in [("y", y1), ("second y", y2)] {
        check_f32("layernorm", what, y, n * c)?;
        ensure!(!y.same_storage(x), "layernorm: {what} must not alias x");
    }
    let gpu = x.gpu();
    if LayerNormVariant::Auto.resolve(gpu)? != LayerNormVariant::Row || !c.is_multiple_of(4) {
        for (y, w, b) in [(y1, w1, b1), (y2, w2, b2)] {
            let out = LayerNormOutput {
                y: y.clone(),
                mean: Tensor::empty(gpu, &[n], DType::F32)?,
                rstd: Tensor::empty(gpu, &[n], DType::F32)?,
            };
            layernorm_forward_into(x, w, b, eps, LayerNormVariant::Auto, &out)?;
        }
        return Ok(());
    }
    if n == 0 || c == 0 {
        return Ok(());
    }
    let kernel = Kernel::new("layernorm", "layernorm_pair_forward4");
    for (r0, r1) in row_chunks(gpu, n, c)? {
        // x and both outputs bind the same element range, so one x_base (a
        // multiple of 4, as C is) places the chunk in all three.
        let (xb, x_base) = x.bind_elems(15, r0 * c, r1 * c);
        let binds = [
            xb,
            w1.bind(16),
            b1.bind(17),
            y1.bind_elems(18, r0 * c, r1 * c).0,
            w2.bind(21),
            b2.bind(22),
            y2.bind_elems(23, r0 * c, r1 * c).0,
        ]
        .map(|b| as_vec4(b, b.binding));
        let rows = (r1 - r0) as u32;
        let p = params(r1 - r0, c, eps, x_base, 0);
        gpu.dispatch(&kernel, &p, &binds, groups_1d(gpu, rows.div_ceil(ROW_WG)))?;
    }
    Ok(())
}
