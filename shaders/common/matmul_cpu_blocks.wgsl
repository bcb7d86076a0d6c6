// Shared by the CPU-adapter matmul kernels (matmul_cpu.wgsl,
// matmul_cpu_subgroup.wgsl): bindings, clamped vec4 loads, the 4×4 panels of
// op(A) and op(B) with their K % 4 tails, the bounds-checked stores, and the
// 16×8 register block of C with its update, K % 4 tail, LoRA epilogue and
// store (one per invocation in matmul_cpu, two in matmul_cpu_subgroup).
//#include common/matmul_params
// A (B) is read as aligned vec4s: its bound range starts 16-byte aligned and
// its residual offset, row stride and batch stride are multiples of 4. These
// are constants, not params: llvmpipe runs both sides of a branch under a mask.
override VEC_A: bool = false;
override VEC_B: bool = false;
// C may be written (and, accumulating, read) as aligned vec4s: the same
// conditions on its bound range, offset and strides, decided on the host.
// On llvmpipe each scalar store is a loop over the SIMD lanes, so one vec4
// store per 4 columns instead of four matters at small K.
override VEC_C: bool = false;
// C is stored transposed: element (m, n) at row n, column m of its storage
// (ldc is then the storage row length, M; VEC_C still says whether those
// rows are aligned vec4s). The host swaps a product 16 or fewer columns wide
// for its transpose this way (src/ops/matmul/gemm/launch.rs), never with a bias.
override TRANS_C: bool = false;

// The body of matmul_forward is unrolled for exactly these; matmul/gemm/
// launch.rs dispatches TM rows (matmul_cpu; TM·BLOCKS in matmul_cpu_subgroup)
// and LANES·TN columns per workgroup.
const TM: u32 = 16u; // rows per Block
const TN: u32 = 8u; // columns per invocation (multiple of 4)
const LANES: u32 = 8u;

// The same ranges as `a`, `b` and `c` (common/matmul_params), seen as
// vec4s (used when VEC_A, VEC_B, VEC_C).
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> c4: array<vec4<f32>>;

// Four consecutive storage elements from e (e % 4 == 0 on the vec4 path).
// Indices are clamped to the bound range: lanes past an edge read valid data.
fn load_a(e: u32) -> vec4<f32> {
    if (VEC_A) {
        return a4[min(e >> 2u, arrayLength(&a4) - 1u)];
    }
    let last = arrayLength(&a) - 1u;
    return vec4<f32>(a[min(e, last)], a[min(e + 1u, last)], a[min(e + 2u, last)],
                     a[min(e + 3u, last)]);
}

fn load_b(e: u32) -> vec4<f32> {
    if (VEC_B) {
        return b4[min(e >> 2u, arrayLength(&b4) - 1u)];
    }
    let last = arrayLength(&b) - 1u;
    return vec4<f32>(b[min(e, last)], b[min(e + 1u, last)], b[min(e + 2u, last)],
                     b[min(e + 3u, last)]);
}

// op(A) rows m .. m+3 at k .. k+3 as columns of a matrix: result[r][kk] = op(A)[m + r, k + kk].
fn a_panel(base: u32, m: u32, k: u32) -> mat4x4<f32> {
    if (TRANS_A) {
        let e = base + k * p.lda + m;
        return transpose(mat4x4<f32>(load_a(e), load_a(e + p.lda), load_a(e + 2u * p.lda),
                                     load_a(e + 3u * p.lda)));
    }
    let e = base + m * p.lda + k;
    return mat4x4<f32>(load_a(e), load_a(e + p.lda), load_a(e + 2u * p.lda), load_a(e + 3u * p.lda));
}

// op(B) rows k .. k+3 at columns n .. n+3: result[kk][q] = op(B)[k + kk, n + q].
fn b_panel(base: u32, k: u32, n: u32) -> mat4x4<f32> {
    if (TRANS_B) {
        let e = base + n * p.ldb + k;
        return transpose(mat4x4<f32>(load_b(e), load_b(e + p.ldb), load_b(e + 2u * p.ldb),
                                     load_b(e + 3u * p.ldb)));
    }
    let e = base + k * p.ldb + n;
    return mat4x4<f32>(load_b(e), load_b(e + p.ldb), load_b(e + 2u * p.ldb), load_b(e + 3u * p.ldb));
}

// The K % 4 tail: only the first `r` k-steps are real, the rest contribute 0.
fn a_tail(base: u32, m: u32, k: u32, r: u32) -> mat4x4<f32> {
    var t: mat4x4<f32>;
    let last = arrayLength(&a) - 1u;
    for (var i = 0u; i < 4u; i++) {
        var v = vec4<f32>(0.0);
        for (var kk = 0u; kk < r; kk++) {
            let e = base + select((m + i) * p.lda + k + kk, (k + kk) * p.lda + m + i, TRANS_A);
            v[kk] = a[min(e, last)];
        }
        t[i] = v;
    }
    return t;
}

fn b_tail(base: u32, k: u32, n: u32, r: u32) -> mat4x4<f32> {
    var t: mat4x4<f32>;
    let last = arrayLength(&b) - 1u;
    for (var kk = 0u; kk < r; kk++) {
        var v: vec4<f32>;
        for (var q = 0u; q < 4u; q++) {
            let e = base + select((k + kk) * p.ldb + n + q, (n + q) * p.ldb + k + kk, TRANS_B);
            v[q] = b[min(e, last)];
        }
        t[kk] = v;
    }
    return t;
}

// The bias of columns n .. n+3 (0 past N): loaded once per block column,
// not once per row.
fn bias_quad(n: u32) -> vec4<f32> {
    var q4 = vec4<f32>(0.0);
    if (p.has_bias != 0u) {
        for (var q = 0u; q < 4u; q++) {
            if (n + q < p.n) {
                q4[q] = bias[p.bias_off + n + q];
            }
        }
    }
    return q4;
}

// Four consecutive elements of C's storage from e, the first `valid` of
// them real: x (+ C's old value when accumulating), one aligned vec4 when
// VEC_C and all four are real.
fn store_quad(e: u32, x: vec4<f32>, valid: u32) {
    if (VEC_C && valid >= 4u) {
        var y = x;
        if (p.accumulate != 0u) {
            y += c4[e >> 2u];
        }
        c4[e >> 2u] = y;
        return;
    }
    for (var q = 0u; q < min(valid, 4u); q++) {
        var y = x[q];
        if (p.accumulate != 0u) {
            y += c[e + q];
        }
        c[e + q] = y;
    }
}

// Row m, columns n .. n+3 of C, bounds-checked: v (+ the bias bq) (+ C's
// old value when accumulating), each element added in that order.
fn store_row(row0: u32, m: u32, n: u32, v: vec4<f32>, bq: vec4<f32>) {
    if (m >= p.m || n >= p.n) {
        return;
    }
    var x = v;
    if (p.has_bias != 0u) {
        x += bq;
    }
    store_quad(row0 + m * p.ldc + n, x, p.n - n);
}

// With TRANS_C: column n of this problem is storage row n of C, and v its
// rows m .. m+3 (consecutive in storage), bounds-checked; no bias.
fn store_run(row0: u32, m: u32, n: u32, v: vec4<f32>) {
    if (n >= p.n || m >= p.m) {
        return;
    }
    store_quad(row0 + n * p.ldc + m, v, p.m - m);
}

fn store_block(row0: u32, m: u32, n: u32, t: mat4x4<f32>, bq: vec4<f32>) {
    if (TRANS_C) {
        let u = transpose(t);
        store_run(row0, m, n, u[0]);
        store_run(row0, m, n + 1u, u[1]);
        store_run(row0, m, n + 2u, u[2]);
        store_run(row0, m, n + 3u, u[3]);
        return;
    }
    store_row(row0, m, n, t[0], bq);
    store_row(row0, m + 1u, n, t[1], bq);
    store_row(row0, m + 2u, n, t[2], bq);
    store_row(row0, m + 3u, n, t[3], bq);
}

// Rows m0 .. m0+15, columns n0 .. n0+7 of C as eight 4×4 blocks
// (16×8 measured ~30% faster than 8×8 at 1024³ on llvmpipe):
// c_hg = Σ_k b_panel(k, n0 + 4h) · a_panel(m0 + 4g, k), so c_hg[r][q] is
// C[m0 + 4g + r, n0 + 4h + q]: plain vec4 FMAs, no arrays (which llvmpipe
// would index lane by lane).
struct Block {
    c00: mat4x4<f32>,
    c01: mat4x4<f32>,
    c02: mat4x4<f32>,
    c03: mat4x4<f32>,
    c10: mat4x4<f32>,
    c11: mat4x4<f32>,
    c12: mat4x4<f32>,
    c13: mat4x4<f32>,
}

// blk += the 4 k-steps whose op(A) panels (rows +0, +4, +8, +12) are a0..a3
// and whose op(B) panels (columns +0, +4) are b0, b1.
fn block_fma(blk: ptr<function, Block>, a0: mat4x4<f32>, a1: mat4x4<f32>, a2: mat4x4<f32>,
             a3: mat4x4<f32>, b0: mat4x4<f32>, b1: mat4x4<f32>) {
    (*blk).c00 += b0 * a0;
    (*blk).c01 += b0 * a1;
    (*blk).c02 += b0 * a2;
    (*blk).c03 += b0 * a3;
    (*blk).c10 += b1 * a0;
    (*blk).c11 += b1 * a1;
    (*blk).c12 += b1 * a2;
    (*blk).c13 += b1 * a3;
}

// After the K loop stopped at k: the K % 4 tail, the LoRA term (when the
// `LORA` override is on), then the one bounds-checked store.
fn block_finish(blk: ptr<function, Block>, ab: u32, bb: u32, row0: u32, m0: u32, n0: u32,
                k: u32) {
    if (k < p.k) {
        let r = p.k - k;
        block_fma(blk, a_tail(ab, m0, k, r), a_tail(ab, m0 + 4u, k, r), a_tail(ab, m0 + 8u, k, r),
                  a_tail(ab, m0 + 12u, k, r), b_tail(bb, k, n0, r), b_tail(bb, k, n0 + 4u, r));
    }
    if (LORA) {
        let e = p.lora;
        for (var j = 0u; j < e.rank; j += 4u) {
            block_fma(blk, lora_u_panel(e, m0, j), lora_u_panel(e, m0 + 4u, j),
                      lora_u_panel(e, m0 + 8u, j), lora_u_panel(e, m0 + 12u, j),
                      lora_v_panel(e, j, n0), lora_v_panel(e, j, n0 + 4u));
        }
    }
    let b0 = bias_quad(n0);
    let b1 = bias_quad(n0 + 4u);
    store_block(row0, m0, n0, (*blk).c00, b0);
    store_block(row0, m0 + 4u, n0, (*blk).c01, b0);
    store_block(row0, m0 + 8u, n0, (*blk).c02, b0);
    store_block(row0, m0 + 12u, n0, (*blk).c03, b0);
    store_block(row0, m0, n0 + 4u, (*blk).c10, b1);
    store_block(row0, m0 + 4u, n0 + 4u, (*blk).c11, b1);
    store_block(row0, m0 + 8u, n0 + 4u, (*blk).c12, b1);
    store_block(row0, m0 + 12u, n0 + 4u, (*blk).c13, b1);
}
