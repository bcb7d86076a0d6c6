// LoRA epilogue: the low-rank term `scale · Σ_j U[m, j] · V[n, j]` that a
// product kernel adds to output element (m, n) before its single store.
//
// One mechanism for every kernel that produces `C = x·op(W)`: matmul_cpu,
// matmul (tiled), and the dequantizing qmatmul_int8 / qmatmul_nf4 (GEMM, GEMV). A kernel opts in by
//   * including this file (`//#include common/lora_epilogue`),
//   * ending its params struct with a member `lora: LoraEpilogue`,
//   * adding the term from the loaders below when `LORA` is true.
// With `LORA` false (the default) the branch is a compile-time constant and
// the kernel is the plain product; the host still binds (dummy) ranges at
// bindings 10 and 11 because naga counts them as used (src/ops/lora/epilogue.rs).
//
// Layouts (elements, f32, row-major):
//   U is [M, rank] with row stride `ldu` (forward: xa = dropout(x)·Aᵀ;
//     backward dx pass: dy·B).
//   V is [N, rank] with row stride `ldv` (forward: B, PEFT's [out, r]), or with
//     LORA_V_T [rank, N] with row stride `ldv` (backward dx pass: A, [r, in]).
// Offsets are residual element offsets inside the bound ranges (chunking).
// Loads past the edges are clamped to the bound range and components past
// `rank` are zero, so callers may read whole 4-wide panels anywhere.

struct LoraEpilogue {
    u_off: u32,
    ldu: u32,
    v_off: u32,
    ldv: u32,
    rank: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

override LORA: bool = false;
// V is stored [rank, N] instead of [N, rank].
override LORA_V_T: bool = false;
// U and V may be read as aligned vec4s along their contiguous axis: offsets,
// strides and rank are multiples of 4 (decided on the host).
override LORA_VEC: bool = false;

// Both are read as vec4 arrays (one binding each; scalars are picked out).
@group(0) @binding(10) var<storage, read> lora_u: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> lora_v: array<vec4<f32>>;

fn lora_u_at(i: u32) -> f32 {
    let w = min(i >> 2u, arrayLength(&lora_u) - 1u);
    return lora_u[w][i & 3u];
}

fn lora_v_at(i: u32) -> f32 {
    let w = min(i >> 2u, arrayLength(&lora_v) - 1u);
    return lora_v[w][i & 3u];
}

// v with its components j .. j+3 at or past rank set to 0. Selected, not
// multiplied by a 0/1 mask: those lanes were read from the next row or past
// the tensor's end, storage that may hold anything, NaN included (0·NaN is
// NaN; a reused buffer made a LoRA forward NaN this way).
fn lora_below_rank(e: LoraEpilogue, j: u32, v: vec4<f32>) -> vec4<f32> {
    return select(vec4<f32>(0.0), v, vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(e.rank));
}

// U[m, j .. j+3] (contiguous in storage).
fn lora_u4(e: LoraEpilogue, m: u32, j: u32) -> vec4<f32> {
    let i = e.u_off + m * e.ldu + j;
    if (LORA_VEC) {
        return lora_u[min(i >> 2u, arrayLength(&lora_u) - 1u)];
    }
    let v = vec4<f32>(lora_u_at(i), lora_u_at(i + 1u), lora_u_at(i + 2u), lora_u_at(i + 3u));
    return lora_below_rank(e, j, v);
}

// V[n, j .. j+3]: contiguous unless LORA_V_T.
fn lora_v4(e: LoraEpilogue, n: u32, j: u32) -> vec4<f32> {
    if (LORA_V_T) {
        let i = e.v_off + j * e.ldv + n;
        let v = vec4<f32>(lora_v_at(i), lora_v_at(i + e.ldv), lora_v_at(i + 2u * e.ldv),
                          lora_v_at(i + 3u * e.ldv));
        return lora_below_rank(e, j, v);
    }
    let i = e.v_off + n * e.ldv + j;
    if (LORA_VEC) {
        return lora_v[min(i >> 2u, arrayLength(&lora_v) - 1u)];
    }
    let v = vec4<f32>(lora_v_at(i), lora_v_at(i + 1u), lora_v_at(i + 2u), lora_v_at(i + 3u));
    return lora_below_rank(e, j, v);
}

// V[n .. n+3, j]: contiguous when LORA_V_T. Zero when j >= rank.
fn lora_v4n(e: LoraEpilogue, j: u32, n: u32) -> vec4<f32> {
    if (j >= e.rank) {
        return vec4<f32>(0.0);
    }
    if (LORA_V_T) {
        let i = e.v_off + j * e.ldv + n;
        if (LORA_VEC) {
            return lora_v[min(i >> 2u, arrayLength(&lora_v) - 1u)];
        }
        return vec4<f32>(lora_v_at(i), lora_v_at(i + 1u), lora_v_at(i + 2u), lora_v_at(i + 3u));
    }
    let i = e.v_off + n * e.ldv + j;
    return vec4<f32>(lora_v_at(i), lora_v_at(i + e.ldv), lora_v_at(i + 2u * e.ldv),
                     lora_v_at(i + 3u * e.ldv));
}

// Register-blocked kernels (4×4 blocks held as mat4x4, column r = output row
// m + r, component q = output column n + q) add, per 4 steps of j,
//   block += lora_v_panel(e, j, n) * lora_u_panel(e, m, j)
// which is exactly how they accumulate their own product.

// result[r][jj] = scale · U[m + r, j + jj]
fn lora_u_panel(e: LoraEpilogue, m: u32, j: u32) -> mat4x4<f32> {
    return mat4x4<f32>(lora_u4(e, m, j), lora_u4(e, m + 1u, j), lora_u4(e, m + 2u, j),
                       lora_u4(e, m + 3u, j)) * e.scale;
}

// result[jj][q] = V[n + q, j + jj]
fn lora_v_panel(e: LoraEpilogue, j: u32, n: u32) -> mat4x4<f32> {
    if (LORA_V_T) {
        return mat4x4<f32>(lora_v4n(e, j, n), lora_v4n(e, j + 1u, n), lora_v4n(e, j + 2u, n),
                           lora_v4n(e, j + 3u, n));
    }
    return transpose(mat4x4<f32>(lora_v4(e, n, j), lora_v4(e, n + 1u, j), lora_v4(e, n + 2u, j),
                                 lora_v4(e, n + 3u, j)));
}

// The whole term for one element (kernels without register blocks).
fn lora_term(e: LoraEpilogue, m: u32, n: u32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < e.rank; j += 4u) {
        s += dot(lora_u4(e, m, j), lora_v4(e, n, j));
    }
    return e.scale * s;
}
