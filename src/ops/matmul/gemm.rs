//! The engine room of [`super`]: a product over explicit strided views, split
//! into sub-problems until every bound range fits one storage binding and
//! every grid dimension fits the workgroup-count limit, then dispatched.

use anyhow::{ensure, Result};

use super::MatmulVariant;
use crate::ops::lora::epilogue::LowRank;
use crate::tensor::Tensor;

mod launch;

/// One operand's storage: element offset, row stride and batch stride.
#[derive(Clone, Copy)]
struct View<'t> {
    t: &'t Tensor,
    off: usize,
    ld: usize,
    bs: usize,
}

impl<'t> View<'t> {
    fn new(t: &'t Tensor, ld: usize, bs: usize) -> Self {
        View { t, off: 0, ld, bs }
    }

    /// The element range `[lo, hi)` covering `batch × rows × cols` of storage.
    fn span(&self, batch: usize, rows: usize, cols: usize) -> (usize, usize) {
        let hi = self.off + (batch - 1) * self.bs + (rows - 1) * self.ld + cols;
        (self.off, hi)
    }

    fn shifted(mut self, d: usize) -> Self {
        self.off += d;
        self
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dim {
    Batch,
    M,
    N,
    K,
}

/// One `C[z] (+)= op(A[z])·op(B[z]) (+ bias)` problem over explicit views.
#[derive(Clone, Copy)]
struct Gemm<'t> {
    a: View<'t>,
    b: View<'t>,
    c: View<'t>,
    bias: Option<View<'t>>,
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    accumulate: bool,
    /// The LoRA epilogue's term (2-D problems only).
    lora: Option<LowRank<'t>>,
    /// C is stored transposed: element (m, n) of this problem lives at row
    /// n, column m of `c` ([`Gemm::narrow_as_transposed`]).
    tc: bool,
}

/// Workgroups per grid dimension (WebGPU's guaranteed minimum).
pub(super) const MAX_GROUPS: usize = 65535;

impl<'t> Gemm<'t> {
    fn size(&self, d: Dim) -> usize {
        match d {
            Dim::Batch => self.batch,
            Dim::M => self.m,
            Dim::N => self.n,
            Dim::K => self.k,
        }
    }

    /// Each operand's storage (rows dim, cols dim) and its view.
    fn operands(&self) -> Vec<(View<'t>, Dim, Dim)> {
        let mut v = vec![
            (
                self.a,
                if self.ta { Dim::K } else { Dim::M },
                if self.ta { Dim::M } else { Dim::K },
            ),
            (
                self.b,
                if self.tb { Dim::N } else { Dim::K },
                if self.tb { Dim::K } else { Dim::N },
            ),
            if self.tc {
                (self.c, Dim::N, Dim::M)
            } else {
                (self.c, Dim::M, Dim::N)
            },
        ];
        if let Some(bias) = self.bias {
            v.push((bias, Dim::Batch, Dim::N));
        }
        v
    }

    /// The sub-problem `[lo, hi)` along `d`. K chunks after the first
    /// accumulate into C and skip the bias.
    fn sub(&self, d: Dim, lo: usize, hi: usize) -> Gemm<'t> {
        let mut g = *self;
        let (ta, tb) = (self.ta, self.tb);
        match d {
            Dim::Batch => {
                g.batch = hi - lo;
                g.a = g.a.shifted(lo * g.a.bs);
                g.b = g.b.shifted(lo * g.b.bs);
                g.c = g.c.shifted(lo * g.c.bs);
            }
            Dim::M => {
                g.m = hi - lo;
                g.a = g.a.shifted(if ta { lo } else { lo * g.a.ld });
                g.c = g.c.shifted(if g.tc { lo } else { lo * g.c.ld });
                g.lora = g.lora.map(|l| l.shifted(lo, 0, hi - lo, g.n));
            }
            Dim::N => {
                g.n = hi - lo;
                g.b = g.b.shifted(if tb { lo * g.b.ld } else { lo });
                g.c = g.c.shifted(if g.tc { lo * g.c.ld } else { lo });
                g.bias = g.bias.map(|v| v.shifted(lo));
                g.lora = g.lora.map(|l| l.shifted(0, lo, g.m, hi - lo));
            }
            Dim::K => {
                g.k = hi - lo;
                g.a = g.a.shifted(if ta { lo * g.a.ld } else { lo });
                g.b = g.b.shifted(if tb { lo } else { lo * g.b.ld });
                if lo > 0 {
                    g.accumulate = true;
                    g.bias = None;
                    g.lora = None;
                }
            }
        }
        g
    }

    /// Runs the problem, splitting it until every bound range fits one
    /// binding and every grid dimension fits the workgroup-count limit.
    fn run(&self, variant: MatmulVariant) -> Result<()> {
        if self.m == 0 || self.n == 0 || self.batch == 0 {
            return Ok(());
        }
        let gpu = self.c.t.gpu();
        // Resolved once for the whole problem, so its pieces share a kernel.
        let variant = variant.for_rows(gpu, self.m);
        if let Some(t) = self.narrow_as_transposed(variant) {
            return t.run(variant);
        }
        let (_, rows_per_group, cols_per_group, _) = self.kernel(variant);
        let cap = (gpu.max_binding() / 4) as usize;
        let align = (gpu.binding_alignment() / 4).max(1) as usize;
        // The split that makes progress: grid limits first, then the first
        // operand whose bound range is too large.
        let mut split = None;
        if self.batch > MAX_GROUPS {
            split = Some((Dim::Batch, self.batch.div_ceil(MAX_GROUPS)));
        } else if self.m.div_ceil(rows_per_group) > MAX_GROUPS {
            split = Some((Dim::M, self.m.div_ceil(rows_per_group * MAX_GROUPS)));
        } else if self.n.div_ceil(cols_per_group) > MAX_GROUPS {
            split = Some((Dim::N, self.n.div_ceil(cols_per_group * MAX_GROUPS)));
        }
        for (view, rows, cols) in self.operands() {
            if split.is_some() {
                break;
            }
            let nb = if view.bs == 0 { 1 } else { self.batch };
            let nr = if rows == Dim::Batch {
                1
            } else {
                self.size(rows)
            };
            let (lo, hi) = view.span(nb, nr, self.size(cols));
            let bound = hi - lo / align * align + 3;
            if bound <= cap {
                continue;
            }
            let room = cap.saturating_sub(align).max(1);
            let d = if nb > 1 {
                Dim::Batch
            } else if nr > 1 {
                rows
            } else {
                cols
            };
            split = Some((d, (hi - lo).div_ceil(room).max(2)));
        }
        // The low-rank operands: U's storage rows are M, V's are N.
        if let (None, Some(l)) = (split, self.lora) {
            for ((lo, hi), d) in l.spans().into_iter().zip([Dim::M, Dim::N]) {
                if split.is_none() && hi - lo / align * align + 3 > cap && self.size(d) > 1 {
                    let room = cap.saturating_sub(align).max(1);
                    split = Some((d, (hi - lo).div_ceil(room).max(2)));
                }
            }
        }
        let Some((d, parts)) = split else {
            return self.dispatch(variant);
        };
        let len = self.size(d);
        let step = len.div_ceil(parts.min(len)).max(1);
        let mut lo = 0;
        while lo < len {
            let hi = (lo + step).min(len);
            self.sub(d, lo, hi).run(variant)?;
            lo = hi;
        }
        Ok(())
    }
}

/// A batched product described by whole tensors: `c[z] (+)= op(a[z])·op(b[z])`
/// where a batch stride of 0 shares that operand. With `reduce`, the batch is
/// summed into one `c` instead (a shared weight's gradient).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    variant: MatmulVariant,
    (c, a, b): (&Tensor, &Tensor, &Tensor),
    bias: Option<&Tensor>,
    (ta, tb): (bool, bool),
    (m, n, k, batch): (usize, usize, usize, usize),
    (a_bs, b_bs): (usize, usize),
    accumulate: bool,
    reduce: bool,
    lora: Option<LowRank>,
) -> Result<()> {
    ensure!(k > 0, "matmul with K = 0 is not supported");
    if let Some(l) = &lora {
        ensure!(
            batch == 1 && !reduce && l.dims() == (m, n),
            "LoRA epilogue {:?} on a batch-{batch} [{m}, {n}] product",
            l.dims()
        );
    }
    let lda = if ta { m } else { k };
    let ldb = if tb { k } else { n };
    let mut g = Gemm {
        a: View::new(a, lda, a_bs),
        b: View::new(b, ldb, b_bs),
        c: View::new(c, n, if reduce { 0 } else { m * n }),
        bias: bias.map(|t| View::new(t, 0, 0)),
        ta,
        tb,
        m,
        n,
        k,
        batch,
        accumulate,
        lora,
        tc: false,
    };
    if batch > 1 && reduce && ta && !tb && a_bs == k * m && b_bs == k * n {
        // The batch continues the contraction axis of both storages.
        g.k *= batch;
        g.batch = 1;
    } else if batch > 1 && !reduce && !ta && a_bs == m * k && b_bs == 0 {
        // A shared B: A's and C's batches are just more rows.
        g.m *= batch;
        g.batch = 1;
    } else if batch > 1 && reduce {
        // Summing a batch of products that share no storage axis: one
        // accumulating pass per batch entry.
        for z in 0..batch {
            let mut s = g.sub(Dim::Batch, z, z + 1);
            s.accumulate = accumulate || z > 0;
            s.bias = if z == 0 { g.bias } else { None };
            s.run(variant)?;
        }
        return Ok(());
    }
    g.run(variant)
}

/// `C (+)= A·op(W) (+ bias) (+ LoRA)` for 2-D operands where W is never whole
/// in f32: `stage(panel, lo, hi)` writes W's storage rows `[lo, hi)` into
/// `panel` (`rows` storage rows of `row_len` elements), and each panel's
/// product runs as soon as it is staged. With `trans_b` (W [N, K]) the panels
/// cover output columns; without (W [K, N]) they cover the reduction, and
/// every panel after the first accumulates (bias and LoRA join the first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_staged(
    variant: MatmulVariant,
    (c, a, panel): (&Tensor, &Tensor, &Tensor),
    bias: Option<&Tensor>,
    tb: bool,
    (m, n, k): (usize, usize, usize),
    rows: usize,
    lora: Option<LowRank>,
    stage: &dyn Fn(&Tensor, usize, usize) -> Result<()>,
) -> Result<()> {
    let (w_rows, row_len, along) = if tb { (n, k, Dim::N) } else { (k, n, Dim::K) };
    ensure!(
        rows > 0 && panel.numel() >= rows * row_len,
        "staged matmul: a panel of {panel:?} for {rows} rows of {row_len}"
    );
    let g = Gemm {
        a: View::new(a, k, 0),
        b: View::new(panel, row_len, 0),
        c: View::new(c, n, 0),
        bias: bias.map(|t| View::new(t, 0, 0)),
        ta: false,
        tb,
        m,
        n,
        k,
        batch: 1,
        accumulate: false,
        lora,
        tc: false,
    };
    for lo in (0..w_rows).step_by(rows) {
        let hi = (lo + rows).min(w_rows);
        stage(panel, lo, hi)?;
        let mut s = g.sub(along, lo, hi);
        s.b = View::new(panel, row_len, 0);
        s.run(variant)?;
    }
    Ok(())
}
