// The storage side shared by the CPU-adapter matmul kernels (matmul_cpu.wgsl,
// matmul_cpu_subgroup.wgsl): bindings, clamped vec4 loads, the 4×4 panels of
// op(A) and op(B) with their K % 4 tails, and the bounds-checked stores.
//#include common/matmul_params
// A (B) is read as aligned vec4s: its bound range starts 16-byte aligned and
// its residual offset, row stride and batch stride are multiples of 4. These
// are constants, not params: llvmpipe runs both sides of a branch under a mask.
override VEC_A: bool = false;
override VEC_B: bool = false;

// The body of matmul_forward is unrolled for exactly these; matmul.rs uses
// TM rows and LANES·TN columns per workgroup.
const TM: u32 = 16u; // rows per invocation
const TN: u32 = 8u; // columns per invocation (multiple of 4)
const LANES: u32 = 8u;

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// The same ranges as `a` and `b`, seen as vec4s (used when VEC_A / VEC_B).
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

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

// Row m, columns n .. n+3 of C, bounds-checked, with bias and accumulation.
fn store_row(row0: u32, m: u32, n: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    let row = row0 + m * p.ldc;
    for (var q = 0u; q < 4u; q++) {
        if (n + q < p.n) {
            var x = v[q];
            if (p.has_bias != 0u) {
                x += bias[p.bias_off + n + q];
            }
            if (p.accumulate != 0u) {
                x += c[row + n + q];
            }
            c[row + n + q] = x;
        }
    }
}

fn store_block(row0: u32, m: u32, n: u32, t: mat4x4<f32>) {
    store_row(row0, m, n, t[0]);
    store_row(row0, m + 1u, n, t[1]);
    store_row(row0, m + 2u, n, t[2]);
    store_row(row0, m + 3u, n, t[3]);
}
