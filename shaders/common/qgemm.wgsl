// Shared bodies of the dequantizing matmuls (qmatmul_int8, qmatmul_nf4):
//   forward  y[m, n]  = Σ_k x[m, k]  · W[n, k]  (+ bias[n])   (C = A · Wᵀ)
//   backward dx[m, k] = Σ_n dy[m, n] · W[n, k]                (C = A · W)
// W [N, K] is the frozen quantized weight; only its dequantized values enter
// the products (f32 accumulation); the full-precision W never exists.
//
// Contract with the including shader, which declares:
//   @binding(0) p: QgemmParams   @binding(1) x: array<f32>   @binding(2) x4: array<vec4<f32>>
//   @binding(3) bias: array<f32> @binding(4) y: array<f32> (read_write)
//   fn decode8(row: u32, col: u32, col_end: u32) -> Dec8
//     = W[row, col .. col+8] dequantized (col % 8 == 0), zero where col + j >= col_end.
// x / x4 are the A operand (x forward, dy backward) over the same bound range.
//
// These are the fused path: the default on GPUs. CPU adapters default to the
// staged path (src/ops/qmatmul/staged.rs), measured faster there: 0.9-1.0x the f32
// matmul at 256 rows versus 0.8x fused, and 6x faster than fused at 32 rows,
// where a 256-row workgroup does the FMAs of 256 rows regardless.
// Why these shapes (choices measured on llvmpipe, where a
// SIMD group is 8 invocations, a load whose address differs per lane costs a
// loop over the lanes, and workgroup memory read at a compile-time-constant
// address costs one load for all lanes):
// - Each 64-step chunk of the reduction, the workgroup decodes its weight tile
//   ONCE into workgroup memory (2 barriers per chunk), so decoding is amortised
//   over every row the workgroup owns; the FMA steps are unrolled by hand so
//   that every tile read is at a constant address. Each invocation keeps its
//   block of C in registers and runs mat4 products (the f32 matmul's blocking).
// - forward (qgemm_forward): 32 invocations × 8 rows = 256 rows share a tile of
//   16 output columns × 64 (per 4 steps: 8 per-lane x loads, 4 tile panels).
// - backward (qgemm_backward): 8 invocations × 16 rows = 128 rows share a tile
//   of 64 reduction steps × 8 output columns.
// Variants tried and measured slower on llvmpipe: 8 lanes × 16 rows forward
// (twice the per-lane x loads), and lanes over output columns with each lane
// decoding its own weights (per-lane codebook lookups on every weight).
// Out-of-range tile entries are zero, so the inner loops need no tail: A values
// read past an edge (clamped addresses, finite) meet zero weights. Rows and
// columns past the edge are never stored.
//
// LoRA: with the `LORA` override (common/lora_epilogue.wgsl) the low-rank term
// scale·U·Vᵀ is accumulated into the same register blocks after the reduction
// and before the one store (src/ops/lora.rs): forward U = x·Aᵀ, V = B [N, r];
// backward U = s·dy·B, V = A [r, K] (LORA_V_T). U's rows are this dispatch's
// rows (the host shifts its offset per row chunk); a dispatch that continues
// a split reduction (accumulate = 1) runs without it.
//
// llvmpipe stops an invocation after 65535 loop iterations in total: a chunk
// costs at most 1 + 8 (decode) iterations (the FMA steps are unrolled), and the
// host splits the reduction into dispatches of at most 65536 steps
// (accumulate = 1 after the first), i.e. ≤ 9,216 iterations per invocation.

//#include common/lora_epilogue

struct QgemmParams {
    m: u32,          // rows of A and C in this dispatch
    cols: u32,       // columns of C (N forward, K backward)
    r0: u32,         // reduction range [r0, r1) of this dispatch (r0 % 64 == 0)
    r1: u32,
    wn: u32,         // weight rows N
    wk: u32,         // weight columns K
    ldx: u32,        // row stride of A
    x_off: u32,      // residual element offsets inside the bound ranges
    y_off: u32,
    has_bias: u32,
    accumulate: u32, // C += instead of C =
    zero: u32,       // always 0 (a runtime value the compiler cannot fold)
    qscale: f32,     // a format constant passed at run time (int8: 1/127), see the format
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    lora: LoraEpilogue,
}

struct Dec8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// A rows start 16-byte aligned (ldx % 4 == 0, x_off % 4 == 0): vec4 loads.
override VEC_X: bool = false;

const KC: u32 = 64u;   // reduction steps per tile

// The decoded tile, as vec4s (layouts at qgemm_forward / qgemm_backward).
var<workgroup> wt: array<vec4<f32>, 256>;

fn load_x(e: u32) -> vec4<f32> {
    if (VEC_X) {
        return x4[min(e >> 2u, arrayLength(&x4) - 1u)];
    }
    let last = arrayLength(&x) - 1u;
    return vec4<f32>(x[min(e, last)], x[min(e + 1u, last)], x[min(e + 2u, last)],
                     x[min(e + 3u, last)]);
}

// A rows m .. m+3 at reduction r .. r+3: result[i][kk] = A[m + i, r + kk].
fn a_panel(m: u32, r: u32) -> mat4x4<f32> {
    let e = p.x_off + m * p.ldx + r;
    return mat4x4<f32>(load_x(e), load_x(e + p.ldx), load_x(e + 2u * p.ldx),
                       load_x(e + 3u * p.ldx));
}

// Backward tile rows kk .. kk+3, columns 4h .. 4h+3: result[kk'][q] = W[rc + kk + kk', c0 + 4h + q].
fn b_panel_bwd(kk: u32, h: u32) -> mat4x4<f32> {
    let i = kk * 2u + h;
    return mat4x4<f32>(wt[i], wt[i + 2u], wt[i + 4u], wt[i + 6u]);
}

// Lane lid decodes weight rows rc + 8·lid .. +7 (reduction), columns c0 .. c0+7.
fn fill_tile(c0: u32, rc: u32, lid: u32) {
    for (var i = 0u; i < 8u; i++) {
        var d = Dec8(vec4<f32>(0.0), vec4<f32>(0.0));
        let rr = lid * 8u + i;
        if (rc + rr < p.r1) {
            d = decode8(rc + rr, c0, p.wk);
        }
        wt[rr * 2u] = d.lo;
        wt[rr * 2u + 1u] = d.hi;
    }
}

// THE store of every qmatmul kernel: bias and accumulation happen here and
// nowhere else. The LoRA term is already in `v` (added to the register blocks,
// or by the GEMV through lora_term).
fn store_out(m: u32, c: u32, v: f32) {
    if (m >= p.m || c >= p.cols) {
        return;
    }
    let i = p.y_off + m * p.cols + c;
    var o = v;
    if (p.has_bias != 0u) {
        o += bias[c];
    }
    if (p.accumulate != 0u) {
        o += y[i];
    }
    y[i] = o;
}

// acc[r] = C row m + r, columns c .. c+3.
fn store_block(m: u32, c: u32, acc: mat4x4<f32>) {
    for (var r = 0u; r < 4u; r++) {
        for (var q = 0u; q < 4u; q++) {
            store_out(m + r, c + q, acc[r][q]);
        }
    }
}

// ---- forward: 32 lanes × 8 rows share a 16-column tile ----
// Lane lid: rows m0 + 8·lid .. +7; it decodes tile column lid % 16, half lid / 16.
const FLANES: u32 = 32u;
const FTM: u32 = 8u;      // rows per invocation
const FROWS: u32 = 256u;  // rows per workgroup
const FCOLS: u32 = 16u;   // columns per workgroup
// Forward tile: wt[c * 16 + r / 4] = W[n0 + c, rc + r .. +4], c < 16.

fn fill_fwd(n0: u32, rc: u32, lid: u32) {
    let c = lid % 16u;
    let half = lid / 16u;
    for (var i = 0u; i < 4u; i++) {
        var d = Dec8(vec4<f32>(0.0), vec4<f32>(0.0));
        let kk = half * 32u + i * 8u;
        if (n0 + c < p.wn) {
            d = decode8(n0 + c, rc + kk, p.r1);
        }
        wt[c * 16u + (kk >> 2u)] = d.lo;
        wt[c * 16u + (kk >> 2u) + 1u] = d.hi;
    }
}

// Tile columns 4h .. 4h+3 at tile steps kk .. kk+3: result[kk'][q] = W[n0 + 4h + q, rc + kk + kk'].
fn b_panel_fwd(kk: u32, h: u32) -> mat4x4<f32> {
    let i = 64u * h + (kk >> 2u);
    return transpose(mat4x4<f32>(wt[i], wt[i + 16u], wt[i + 32u], wt[i + 48u]));
}

struct FAcc {
    c: array<mat4x4<f32>, 8>, // c[4g + h]: rows m0 + 4g .. +3, columns n0 + 4h .. +3
}

fn fstep(acc: ptr<function, FAcc>, m0: u32, rc: u32, kk: u32) {
    let a0 = a_panel(m0, rc + kk);
    let a1 = a_panel(m0 + 4u, rc + kk);
    let b0 = b_panel_fwd(kk, 0u);
    let b1 = b_panel_fwd(kk, 1u);
    let b2 = b_panel_fwd(kk, 2u);
    let b3 = b_panel_fwd(kk, 3u);
    (*acc).c[0] += b0 * a0;
    (*acc).c[1] += b1 * a0;
    (*acc).c[2] += b2 * a0;
    (*acc).c[3] += b3 * a0;
    (*acc).c[4] += b0 * a1;
    (*acc).c[5] += b1 * a1;
    (*acc).c[6] += b2 * a1;
    (*acc).c[7] += b3 * a1;
}

fn qgemm_forward(wg: vec3<u32>, lid: u32) {
    let n0 = wg.x * FCOLS;
    let m0 = wg.y * FROWS + lid * FTM;
    var acc: FAcc;
    for (var rc = p.r0; rc < p.r1; rc += KC) {
        workgroupBarrier();
        fill_fwd(n0, rc, lid);
        workgroupBarrier();
        fstep(&acc, m0, rc, 0u);
        fstep(&acc, m0, rc, 4u);
        fstep(&acc, m0, rc, 8u);
        fstep(&acc, m0, rc, 12u);
        fstep(&acc, m0, rc, 16u);
        fstep(&acc, m0, rc, 20u);
        fstep(&acc, m0, rc, 24u);
        fstep(&acc, m0, rc, 28u);
        fstep(&acc, m0, rc, 32u);
        fstep(&acc, m0, rc, 36u);
        fstep(&acc, m0, rc, 40u);
        fstep(&acc, m0, rc, 44u);
        fstep(&acc, m0, rc, 48u);
        fstep(&acc, m0, rc, 52u);
        fstep(&acc, m0, rc, 56u);
        fstep(&acc, m0, rc, 60u);
    }
    if (LORA) {
        let e = p.lora;
        for (var j = 0u; j < e.rank; j += 4u) {
            let u0 = lora_u_panel(e, m0, j);
            let u1 = lora_u_panel(e, m0 + 4u, j);
            let v0 = lora_v_panel(e, j, n0);
            let v1 = lora_v_panel(e, j, n0 + 4u);
            let v2 = lora_v_panel(e, j, n0 + 8u);
            let v3 = lora_v_panel(e, j, n0 + 12u);
            acc.c[0] += v0 * u0;
            acc.c[1] += v1 * u0;
            acc.c[2] += v2 * u0;
            acc.c[3] += v3 * u0;
            acc.c[4] += v0 * u1;
            acc.c[5] += v1 * u1;
            acc.c[6] += v2 * u1;
            acc.c[7] += v3 * u1;
        }
    }
    store_block(m0, n0, acc.c[0]);
    store_block(m0, n0 + 4u, acc.c[1]);
    store_block(m0, n0 + 8u, acc.c[2]);
    store_block(m0, n0 + 12u, acc.c[3]);
    store_block(m0 + 4u, n0, acc.c[4]);
    store_block(m0 + 4u, n0 + 4u, acc.c[5]);
    store_block(m0 + 4u, n0 + 8u, acc.c[6]);
    store_block(m0 + 4u, n0 + 12u, acc.c[7]);
}

// ---- backward: 8 lanes × 16 rows share a 64×8 tile ----
// Backward tile: wt[r * 2 + h] = W[rc + r, c0 + 4h .. +4].
const TM: u32 = 16u;     // rows per invocation
const QLANES: u32 = 8u;
const QROWS: u32 = 128u; // rows per workgroup = QLANES * TM
const QCOLS: u32 = 8u;   // columns per workgroup

struct Acc {
    c: array<mat4x4<f32>, 8>, // c[4h + g]: rows m0 + 4g .. +3, columns c0 + 4h .. +3
}

// Four reduction steps rc + kk .. +3. Called with constant kk (the loop is
// unrolled by hand) so every tile address is a compile-time constant: llvmpipe
// then loads it once for all lanes instead of once per lane.
fn qstep(acc: ptr<function, Acc>, m0: u32, rc: u32, kk: u32) {
    let a0 = a_panel(m0, rc + kk);
    let a1 = a_panel(m0 + 4u, rc + kk);
    let a2 = a_panel(m0 + 8u, rc + kk);
    let a3 = a_panel(m0 + 12u, rc + kk);
    let b0 = b_panel_bwd(kk, 0u);
    let b1 = b_panel_bwd(kk, 1u);
    (*acc).c[0] += b0 * a0;
    (*acc).c[1] += b0 * a1;
    (*acc).c[2] += b0 * a2;
    (*acc).c[3] += b0 * a3;
    (*acc).c[4] += b1 * a0;
    (*acc).c[5] += b1 * a1;
    (*acc).c[6] += b1 * a2;
    (*acc).c[7] += b1 * a3;
}

fn qgemm_backward(wg: vec3<u32>, lid: u32) {
    let c0 = wg.x * QCOLS;
    let m0 = wg.y * QROWS + lid * TM;
    var acc: Acc; // zero-initialised; indexed with constants only, so it lives in registers
    for (var rc = p.r0; rc < p.r1; rc += KC) {
        workgroupBarrier(); // everyone is done with the previous tile
        fill_tile(c0, rc, lid);
        workgroupBarrier();
        qstep(&acc, m0, rc, 0u);
        qstep(&acc, m0, rc, 4u);
        qstep(&acc, m0, rc, 8u);
        qstep(&acc, m0, rc, 12u);
        qstep(&acc, m0, rc, 16u);
        qstep(&acc, m0, rc, 20u);
        qstep(&acc, m0, rc, 24u);
        qstep(&acc, m0, rc, 28u);
        qstep(&acc, m0, rc, 32u);
        qstep(&acc, m0, rc, 36u);
        qstep(&acc, m0, rc, 40u);
        qstep(&acc, m0, rc, 44u);
        qstep(&acc, m0, rc, 48u);
        qstep(&acc, m0, rc, 52u);
        qstep(&acc, m0, rc, 56u);
        qstep(&acc, m0, rc, 60u);
    }
    if (LORA) {
        let e = p.lora;
        for (var j = 0u; j < e.rank; j += 4u) {
            let u0 = lora_u_panel(e, m0, j);
            let u1 = lora_u_panel(e, m0 + 4u, j);
            let u2 = lora_u_panel(e, m0 + 8u, j);
            let u3 = lora_u_panel(e, m0 + 12u, j);
            let v0 = lora_v_panel(e, j, c0);
            let v1 = lora_v_panel(e, j, c0 + 4u);
            acc.c[0] += v0 * u0;
            acc.c[1] += v0 * u1;
            acc.c[2] += v0 * u2;
            acc.c[3] += v0 * u3;
            acc.c[4] += v1 * u0;
            acc.c[5] += v1 * u1;
            acc.c[6] += v1 * u2;
            acc.c[7] += v1 * u3;
        }
    }
    store_block(m0, c0, acc.c[0]);
    store_block(m0 + 4u, c0, acc.c[1]);
    store_block(m0 + 8u, c0, acc.c[2]);
    store_block(m0 + 12u, c0, acc.c[3]);
    store_block(m0, c0 + 4u, acc.c[4]);
    store_block(m0 + 4u, c0 + 4u, acc.c[5]);
    store_block(m0 + 8u, c0 + 4u, acc.c[6]);
    store_block(m0 + 12u, c0 + 4u, acc.c[7]);
}
