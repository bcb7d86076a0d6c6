//! The engine room of [`super`]: a product over explicit strided views, split
//! into sub-problems until every bound range fits one storage binding and
//! every grid dimension fits the workgroup-count limit, then dispatched.

use anyhow::{ensure, Result};

use super::{MatmulParams, MatmulVariant};
use crate::kernel::{as_vec4, Bind, Kernel};
use crate::ops::lora::epilogue::{dummy_binds, LowRank};
use crate::tensor::Tensor;

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
            (self.c, Dim::M, Dim::N),
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
                g.c = g.c.shifted(lo * g.c.ld);
                g.lora = g.lora.map(|l| l.shifted(lo, 0, hi - lo, g.n));
            }
            Dim::N => {
                g.n = hi - lo;
                g.b = g.b.shifted(if tb { lo * g.b.ld } else { lo });
                g.c = g.c.shifted(lo);
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
        let (_, rows_per_group, cols_per_group) = variant.kernel(gpu);
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

    fn dispatch(&self, variant: MatmulVariant) -> Result<()> {
        let gpu = self.c.t.gpu();
        let (stem, rows_per_group, cols_per_group) = variant.kernel(gpu);
        let bind = |v: View<'t>, binding, rows: Dim, cols: Dim| {
            let nb = if v.bs == 0 { 1 } else { self.batch };
            let nr = if rows == Dim::Batch {
                1
            } else {
                self.size(rows)
            };
            let (lo, hi) = v.span(nb, nr, self.size(cols));
            v.t.bind_elems(binding, lo, hi)
        };
        let ops = self.operands();
        let (a, a_off) = bind(ops[0].0, 1, ops[0].1, ops[0].2);
        let (b, b_off) = bind(ops[1].0, 2, ops[1].1, ops[1].2);
        let (c, c_off) = bind(ops[2].0, 4, ops[2].1, ops[2].2);
        // Without a bias, binding 3 gets A's range again (both read-only).
        let (bias, bias_off) = match ops.get(3) {
            Some(o) => bind(o.0, 3, o.1, o.2),
            None => (Bind { binding: 3, ..a }, 0),
        };
        let u = |x: usize| x as u32;
        let mut params = MatmulParams {
            m: u(self.m),
            n: u(self.n),
            k: u(self.k),
            batch: u(self.batch),
            a_off,
            lda: u(self.a.ld),
            a_bs: u(self.a.bs),
            accumulate: u(self.accumulate as usize),
            b_off,
            ldb: u(self.b.ld),
            b_bs: u(self.b.bs),
            has_bias: u(self.bias.is_some() as usize),
            c_off,
            ldc: u(self.c.ld),
            c_bs: u(self.c.bs),
            bias_off,
            lora: Default::default(),
        };
        let flag = |x: bool| x as u32 as f64;
        let mut constants = vec![("TRANS_A", flag(self.ta)), ("TRANS_B", flag(self.tb))];
        if stem.starts_with("matmul_cpu") {
            // Aligned operands are read (C written) as vec4s (bindings 5..7);
            // a flag whose code never runs (no K loop below K = 4, no whole
            // quads below N = 4) keeps the common pipeline: one less compile.
            let (no_loop, no_quad) = (self.k < 4, self.n < 4);
            constants.push(("VEC_A", flag(no_loop || vec_ok(&a, a_off, &self.a))));
            constants.push(("VEC_B", flag(no_loop || vec_ok(&b, b_off, &self.b))));
            constants.push(("VEC_C", flag(no_quad || vec_ok(&c, c_off, &self.c))));
        }
        // The LoRA epilogue's bindings; without a term they get A's range and
        // the constants stay as they were (the same pipeline as before).
        let [lu, lv] = match &self.lora {
            Some(l) => {
                let (binds, lp, consts) = l.bind();
                params.lora = lp;
                constants.extend(consts);
                binds
            }
            None => dummy_binds(a),
        };
        let vec4s = [as_vec4(a, 5), as_vec4(b, 6), as_vec4(c, 7)];
        let binds = [a, b, bias, c, vec4s[0], vec4s[1], vec4s[2], lu, lv];
        gpu.dispatch(
            &Kernel::new(stem, "matmul_forward").with(&constants),
            &params,
            &binds,
            [
                u(self.n.div_ceil(cols_per_group)),
                u(self.m.div_ceil(rows_per_group)),
                u(self.batch),
            ],
        )
    }
}

/// True when a view's elements can be read as aligned vec4s.
fn vec_ok(bind: &Bind, residual: u32, v: &View) -> bool {
    bind.offset.is_multiple_of(16)
        && residual.is_multiple_of(4)
        && v.ld.is_multiple_of(4)
        && v.bs.is_multiple_of(4)
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
