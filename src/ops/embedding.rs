//! embedding: `out[n, :] = table[ids[n], :]` (token and position embeddings).
//!
//! Shapes: `table` [V, C] (f32, or packed f16/bf16 for frozen tables), `ids`
//! i32 of any shape `S` with N elements (N = B·T), `out` f32 `S ++ [C]`.
//! GPT-2's `wpe` is the same op with position ids.
//!
//! Out-of-range ids: ids known on the host are validated (the error names the
//! bad id and its position); the kernel also writes zeros for any id outside
//! `[0, V)`, so a device-only id tensor can never read out of bounds.
//!
//! Backward: `dtable[v, :] = Σ_{n: ids[n] = v} dout[n, :]`, a race-free,
//! deterministic scatter-add with no float atomics. On the host the ids are
//! grouped into a CSR (sorted unique ids, offsets, positions ascending within
//! each id); one GPU invocation per (unique id, column) sums its positions in
//! order. Forward saves only the host copy of the ids for backward.
//!
//! Chunking: the table (GPT-2's wte is 154 MB in f32) and out/dout are split
//! into row ranges that each fit one storage binding; see the shader header.

use crate::device::Gpu;
use crate::kernel::{as_vec4, groups_1d, Bind, Kernel};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};
use anyhow::{bail, ensure, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EmbeddingParams {
    pub n: u32,
    pub c: u32,
    pub vocab: u32,
    pub row_lo: u32,
    pub row_hi: u32,
    pub table_base: u32,
    pub out_off: u32,
    pub ids_off: u32,
    pub zero_oob: u32,
    pub _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EmbeddingBackwardParams {
    pub nu: u32,
    pub c: u32,
    pub u_lo: u32,
    pub table_base: u32,
    pub dout_off: u32,
    pub _pad: [u32; 3],
}

/// Splits `rows` rows of `cols` elements (`per_word` elements per u32 word)
/// into ranges whose words, plus binding-offset slack, fit one storage binding.
/// A chunk never exceeds `usable - 1` rows, so the per-chunk CSR arrays of
/// the backward (offsets hold rows + 1 entries) fit one binding as well.
pub(crate) fn row_chunks(
    gpu: &Gpu,
    rows: usize,
    cols: usize,
    per_word: usize,
) -> Result<Vec<(usize, usize)>> {
    let align_words = (gpu.binding_alignment() / 4).max(1) as usize;
    // One extra word: a packed row range may start and end mid-word.
    let usable = ((gpu.max_binding() / 4) as usize).saturating_sub(align_words + 1);
    let step = (usable * per_word / cols.max(1)).min(usable.saturating_sub(1));
    ensure!(
        step >= 1,
        "a row of {cols} elements does not fit one storage binding of {} bytes",
        gpu.max_binding()
    );
    Ok((0..rows.max(1))
        .step_by(step)
        .map(|lo| (lo, (lo + step).min(rows)))
        .collect())
}

/// Binds the elements `[lo, hi)` of a tensor of any storage dtype. Returns the
/// binding and the element index (of the whole tensor) at the binding start.
fn bind_range(t: &Tensor, binding: u32, lo: usize, hi: usize) -> (Bind<'_>, u32) {
    let per_word = if matches!(t.dtype(), DType::F16 | DType::BF16) {
        2
    } else {
        1
    };
    let align = t.gpu().binding_alignment();
    let start = (lo / per_word) as u64 * 4 / align * align;
    let end = (hi.div_ceil(per_word) as u64 * 4).max(start + 4);
    let b = Bind {
        binding,
        buffer: t.buffer(),
        offset: start,
        size: end - start,
    };
    (b, (start / 4) as u32 * per_word as u32)
}

/// Fails with the first id outside `[0, vocab)`, naming it and its position.
pub fn validate_ids(ids: &[i32], vocab: usize) -> Result<()> {
    if let Some((pos, &id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id as usize >= vocab)
    {
        bail!("id {id} at position {pos} is out of range for a table of {vocab} rows");
    }
    Ok(())
}

fn dtype_code(d: DType) -> Result<f64> {
    Ok(match d {
        DType::F32 => 0.0,
        DType::F16 => 1.0,
        DType::BF16 => 2.0,
        DType::I32 => bail!("embedding table must be f32, f16 or bf16"),
    })
}

/// Gathers table rows: returns f32 `ids.shape ++ [C]`. `host_ids`, when given,
/// must equal the contents of `ids` and is validated against the vocabulary.
pub fn embedding_forward(table: &Tensor, ids: &Tensor, host_ids: Option<&[i32]>) -> Result<Tensor> {
    let c = table.cols();
    let mut shape = ids.shape().to_vec();
    shape.push(c);
    let out = Tensor::empty(table.gpu(), &shape, DType::F32)?;
    embedding_forward_into(&out, table, ids, host_ids)?;
    Ok(out)
}

/// [`embedding_forward`] into a caller-allocated f32 `out` of N·C elements.
pub fn embedding_forward_into(
    out: &Tensor,
    table: &Tensor,
    ids: &Tensor,
    host_ids: Option<&[i32]>,
) -> Result<()> {
    ensure!(
        table.shape().len() == 2,
        "embedding table must be [V, C], got {:?}",
        table.shape()
    );
    ensure!(ids.dtype() == DType::I32, "embedding ids must be i32");
    let (vocab, c) = (table.shape()[0], table.shape()[1]);
    if let Some(h) = host_ids {
        ensure!(
            h.len() == ids.numel(),
            "{} host ids for an id tensor of shape {:?}",
            h.len(),
            ids.shape()
        );
        validate_ids(h, vocab)?;
    }
    let gpu = table.gpu();
    let n = ids.numel();
    ensure!(
        out.dtype() == DType::F32 && out.numel() == n * c,
        "embedding out {:?} {} for {n} ids of width {c}",
        out.shape(),
        out.dtype().name()
    );
    if n == 0 || c == 0 {
        return Ok(());
    }
    let code = dtype_code(table.dtype())?;
    let per_word = if code == 0.0 { 1 } else { 2 };
    let constants = [("TABLE_DTYPE", code)];
    let table_chunks = row_chunks(gpu, vocab, c, per_word)?;
    for (n0, n1) in row_chunks(gpu, n, c, 1)? {
        let (out_b, out_off) = out.bind_elems(3, n0 * c, n1 * c);
        let (ids_b, ids_off) = ids.bind_elems(1, n0, n1);
        for (k, &(r0, r1)) in table_chunks.iter().enumerate() {
            let (tab_b, table_base) = bind_range(table, 2, r0 * c, r1 * c);
            let params = EmbeddingParams {
                n: (n1 - n0) as u32,
                c: c as u32,
                vocab: vocab as u32,
                row_lo: r0 as u32,
                row_hi: r1 as u32,
                table_base,
                out_off,
                ids_off,
                zero_oob: (k == 0) as u32,
                _pad: [0; 3],
            };
            // Four columns per invocation where an f32 table's chunks
            // start on whole vec4s (bindings 9 and 10 see them as vec4s).
            let quads = code == 0.0
                && c.is_multiple_of(4)
                && out_off.is_multiple_of(4)
                && table_base.is_multiple_of(4);
            let (entry, per) = if quads {
                ("embedding_forward4", 4)
            } else {
                ("embedding_forward", 1)
            };
            let mut binds = vec![ids_b, tab_b, out_b];
            if quads {
                binds.extend([as_vec4(tab_b, 9), as_vec4(out_b, 10)]);
            }
            let invocations = ((n1 - n0) * c / per) as u32;
            gpu.dispatch(
                &Kernel::new("embedding", entry).with(&constants),
                &params,
                &binds,
                groups_1d(gpu, invocations.div_ceil(256)),
            )?;
        }
    }
    Ok(())
}

/// Positions grouped by id: `uniq` sorted, `offsets[u]..offsets[u+1]` indexes
/// `positions`, ascending within each id (the summation order).
struct Csr {
    uniq: Vec<i32>,
    offsets: Vec<i32>,
    positions: Vec<i32>,
}

fn csr(ids: &[i32]) -> Csr {
    let mut order: Vec<i32> = (0..ids.len() as i32).collect();
    // Stable: equal ids keep ascending positions.
    order.sort_by_key(|&p| ids[p as usize]);
    let mut uniq = Vec::new();
    let mut offsets = Vec::new();
    for (k, &p) in order.iter().enumerate() {
        let id = ids[p as usize];
        if uniq.last() != Some(&id) {
            uniq.push(id);
            offsets.push(k as i32);
        }
    }
    offsets.push(order.len() as i32);
    Csr {
        uniq,
        offsets,
        positions: order,
    }
}

/// Adds `Σ_{n: ids[n] = v} dout[n, :]` into row v of `dtable` (f32 [V, C]),
/// deterministically. `dout` is f32 with N·C elements, `ids` the host ids.
pub fn embedding_backward_accumulate(dtable: &Tensor, dout: &Tensor, ids: &[i32]) -> Result<()> {
    ensure!(
        dtable.dtype() == DType::F32 && dout.dtype() == DType::F32,
        "embedding backward needs f32 dtable and dout"
    );
    let (vocab, c) = (dtable.rows(), dtable.cols());
    ensure!(
        dout.numel() == ids.len() * c,
        "dout {:?} does not match {} ids of width {c}",
        dout.shape(),
        ids.len()
    );
    validate_ids(ids, vocab)?;
    let gpu = dtable.gpu();
    if ids.is_empty() || c == 0 {
        return Ok(());
    }
    let kernel = Kernel::new("embedding", "embedding_backward");
    let table_chunks = row_chunks(gpu, vocab, c, 1)?;
    for (n0, n1) in row_chunks(gpu, ids.len(), c, 1)? {
        let g = csr(&ids[n0..n1]);
        let uniq = Tensor::from_i32(gpu, &[g.uniq.len()], &g.uniq)?;
        let offsets = Tensor::from_i32(gpu, &[g.offsets.len()], &g.offsets)?;
        let positions = Tensor::from_i32(gpu, &[g.positions.len()], &g.positions)?;
        let (dout_b, dout_off) = dout.bind_elems(7, n0 * c, n1 * c);
        for &(r0, r1) in &table_chunks {
            let u0 = g.uniq.partition_point(|&v| (v as usize) < r0);
            let u1 = g.uniq.partition_point(|&v| (v as usize) < r1);
            if u0 == u1 {
                continue;
            }
            let (tab_b, table_base) = dtable.bind_elems(8, r0 * c, r1 * c);
            let params = EmbeddingBackwardParams {
                nu: (u1 - u0) as u32,
                c: c as u32,
                u_lo: u0 as u32,
                table_base: (r0 * c) as u32 - table_base,
                dout_off,
                _pad: [0; 3],
            };
            let total = ((u1 - u0) * c) as u32;
            gpu.dispatch(
                &kernel,
                &params,
                &[
                    uniq.bind(4),
                    offsets.bind(5),
                    positions.bind(6),
                    dout_b,
                    tab_b,
                ],
                groups_1d(gpu, total.div_ceil(256)),
            )?;
        }
    }
    Ok(())
}

/// The table gradient f32 [V, C] for `dout` (N·C elements) and host ids.
/// Rows of ids that do not occur are zero.
pub fn embedding_backward(dout: &Tensor, ids: &[i32], vocab: usize) -> Result<Tensor> {
    let c = if ids.is_empty() {
        dout.cols()
    } else {
        dout.numel() / ids.len()
    };
    let dtable = Tensor::zeros(dout.gpu(), &[vocab, c], DType::F32)?;
    embedding_backward_accumulate(&dtable, dout, ids)?;
    Ok(dtable)
}

/// Tape version: `ids` on the device plus the same ids on the host (validated
/// here, kept by the backward closure to build the CSR).
pub fn embedding(tape: &Tape, table: &Var, ids: &Tensor, host_ids: &[i32]) -> Result<Var> {
    let out = embedding_forward(table.tensor(), ids, Some(host_ids))?;
    let host = host_ids.to_vec();
    let vocab = table.shape()[0];
    Ok(tape.record("embedding", &[table], out, move |dy, _| {
        Ok(vec![Some(embedding_backward(dy, &host, vocab)?)])
    }))
}

/// Tape version from host ids of shape `ids_shape` (uploaded here).
pub fn embedding_ids(tape: &Tape, table: &Var, ids: &[i32], ids_shape: &[usize]) -> Result<Var> {
    validate_ids(ids, table.shape().first().copied().unwrap_or(0))?;
    let t = Tensor::from_i32(tape.gpu(), ids_shape, ids)?;
    embedding(tape, table, &t, ids)
}
