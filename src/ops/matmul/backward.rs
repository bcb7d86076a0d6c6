//! The backward of [`super`]: `dA = dC·op(B)ᵀ`, `dB = op(A)ᵀ·dC` through the
//! same product kernel with other transpose flags and operand roles, and the
//! bias gradient's column sum (`matmul_backward_bias`).

use anyhow::{ensure, Result};

use super::gemm::{gemm, MAX_GROUPS};
use super::{dims, MatmulGrads, MatmulParams, MatmulVariant};
use crate::kernel::Kernel;
use crate::tensor::{DType, Tensor};

/// Gradients of `C = op(A)·op(B) + bias` given `dc`; `needs` = [dA, dB, dbias].
pub fn matmul_backward(
    dc: &Tensor,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    needs: [bool; 3],
) -> Result<MatmulGrads> {
    matmul_backward_with(MatmulVariant::Auto, dc, a, b, trans_a, trans_b, needs)
}

/// [`matmul_backward`] with a chosen kernel.
pub fn matmul_backward_with(
    variant: MatmulVariant,
    dc: &Tensor,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    needs: [bool; 3],
) -> Result<MatmulGrads> {
    let (ta, tb) = (trans_a, trans_b);
    let d = dims(a, b, None, ta, tb)?;
    ensure!(
        dc.shape() == d.out,
        "matmul dC {dc:?} for output {:?}",
        d.out
    );
    let (m, n, k, batch) = (d.m, d.n, d.k, d.batch);
    let (a_bs, b_bs, c_bs) = (m * k, if d.b_shared { 0 } else { k * n }, m * n);
    let gpu = a.gpu();
    let mut g = MatmulGrads::default();
    // Each gradient is a fresh (beta = 0), bias-free product of two of dC, A, B.
    type Ops<'a> = (&'a Tensor, &'a Tensor, &'a Tensor);
    let grad = |ops: Ops<'_>, trans, mnkb, strides, reduce| {
        gemm(
            variant, ops, None, trans, mnkb, strides, false, reduce, None,
        )
    };
    if needs[0] {
        let da = Tensor::empty(gpu, a.shape(), DType::F32)?;
        if ta {
            // dA (stored [K, M]) = op(B)·dCᵀ
            grad(
                (&da, b, dc),
                (tb, true),
                (k, m, n, batch),
                (b_bs, c_bs),
                false,
            )?;
        } else {
            // dA [M, K] = dC·op(B)ᵀ
            grad(
                (&da, dc, b),
                (false, !tb),
                (m, k, n, batch),
                (c_bs, b_bs),
                false,
            )?;
        }
        g.da = Some(da);
    }
    if needs[1] {
        let db = Tensor::empty(gpu, b.shape(), DType::F32)?;
        let reduce = d.b_shared;
        if tb {
            // dB (stored [N, K]) = dCᵀ·op(A)
            grad(
                (&db, dc, a),
                (true, ta),
                (n, k, m, batch),
                (c_bs, a_bs),
                reduce,
            )?;
        } else {
            // dB [K, N] = op(A)ᵀ·dC
            grad(
                (&db, a, dc),
                (!ta, false),
                (k, n, m, batch),
                (a_bs, c_bs),
                reduce,
            )?;
        }
        g.db = Some(db);
    }
    if needs[2] {
        g.dbias = Some(bias_grad(dc)?);
    }
    Ok(g)
}

/// Column sums of `dc` viewed as `[rows, N]`: the bias gradient `[N]`.
pub fn bias_grad(dc: &Tensor) -> Result<Tensor> {
    let gpu = dc.gpu();
    let (rows, n) = (dc.rows(), dc.cols());
    let out = Tensor::empty(gpu, &[n], DType::F32)?;
    let align = (gpu.binding_alignment() / 4).max(1) as usize;
    let room = ((gpu.max_binding() / 4) as usize)
        .saturating_sub(align)
        .max(1);
    let width = room.min(MAX_GROUPS * 64).min(n).max(1);
    for c0 in (0..n).step_by(width) {
        let c1 = (c0 + width).min(n);
        let w = c1 - c0;
        let height = if room > w { (room - w) / n + 1 } else { 1 };
        for r0 in (0..rows.max(1)).step_by(height) {
            let r1 = (r0 + height).min(rows);
            let (x, x_off) = dc.bind_elems(1, r0 * n + c0, (r1.max(r0 + 1) - 1) * n + c1);
            let (y, y_off) = out.bind_elems(4, c0, c1);
            let params = MatmulParams {
                m: (r1 - r0) as u32,
                n: w as u32,
                a_off: x_off,
                lda: n as u32,
                c_off: y_off,
                accumulate: (r0 > 0) as u32,
                ..Default::default()
            };
            let kernel = Kernel::new("matmul", "matmul_backward_bias");
            gpu.dispatch(&kernel, &params, &[x, y], [w.div_ceil(64) as u32, 1, 1])?;
        }
    }
    Ok(out)
}
