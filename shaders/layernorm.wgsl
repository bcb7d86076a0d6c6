// layernorm over the last dim: x [N, C] (N = B·T rows), weight γ [C], bias β [C]
//   y = (x - mean) · rstd · γ + β,  rstd = 1 / sqrt(var + eps)  (biased var)
// Forward writes y [N, C] and saves mean [N] and rstd [N] for the backward.
// Backward, with xh = (x - mean)·rstd and g = dy·γ:
//   dx = rstd · (g - mean_c(g) - xh · mean_c(g·xh))
//   dγ = Σ_rows dy·xh,  dβ = Σ_rows dy
//
// This file is the CPU-adapter / no-subgroup variant: ONE INVOCATION PER ROW,
// no barriers (on llvmpipe a barrier costs a coroutine switch per 8 lanes,
// while 8 rows side by side fill its 8-wide SIMD). `layernorm_subgroup.wgsl`
// is the GPU variant (one workgroup per row, subgroupAdd).
//
// Mean and variance are two-pass (mean first, then Σ(x-mean)²), each summed
// in four interleaved f32 accumulators, which keeps C up to thousands well
// inside 1e-6 relative without Welford's per-element division.
//
// layernorm_pair_forward4 (inference only) normalises each row twice, with
// two weight/bias pairs, from one pass over its statistics.
//
// dγ/dβ need sums over rows, done race-free without atomics in two kernels
// shared by both variants: `layernorm_backward_weight_partial` (one invocation
// per column and block of `blk_rows` rows) writes per-block partial sums, and
// `layernorm_backward_weight` (one invocation per column) adds the blocks.
//
// The host splits N into row chunks that fit one storage binding (see
// common/layernorm_params for the params and the row kernels' bindings).
//#include common/layernorm_params

// The weight-gradient kernels' partial sums [nblk, C] and results [C].
@group(0) @binding(11) var<storage, read_write> dw_part: array<f32>;
@group(0) @binding(12) var<storage, read_write> db_part: array<f32>;
@group(0) @binding(13) var<storage, read_write> dw: array<f32>;
@group(0) @binding(14) var<storage, read_write> db: array<f32>;

const ROW_WG: u32 = 32u;

// The row kernels' [rows, C] and [C] ranges as vec4s, for the *4 entries
// (C and the chunk's start multiples of 4; the host decides). They make the
// scalar entries' exact sums and values with one load or store per 4
// elements, where llvmpipe runs each storage access as a loop over its SIMD
// lanes. Each entry uses at most six storage bindings.
@group(0) @binding(15) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(20) var<storage, read_write> dx4: array<vec4<f32>>;

// The row statistics both forward entries finish with, from four
// interleaved partial sums and a scalar tail, in one fixed order.
fn row_mean(s4: vec4<f32>, s1: f32, n: u32) -> f32 {
    return ((s4.x + s4.y) + (s4.z + s4.w) + s1) / f32(n);
}

fn row_rstd(q4: vec4<f32>, q1: f32, n: u32) -> f32 {
    return inverseSqrt(((q4.x + q4.y) + (q4.z + q4.w) + q1) / f32(n) + p.eps);
}

@compute @workgroup_size(32)
fn layernorm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * ROW_WG + lid;
    if (r >= p.rows) {
        return;
    }
    let n = p.cols;
    let o = p.x_base + r * n;
    let n4 = n & ~3u;
    var s4 = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c += 4u) {
        s4 += vec4<f32>(x[o + c], x[o + c + 1u], x[o + c + 2u], x[o + c + 3u]);
    }
    var s1 = 0.0;
    for (var c = n4; c < n; c++) {
        s1 += x[o + c];
    }
    let mean = row_mean(s4, s1, n);
    var q4 = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c += 4u) {
        let d = vec4<f32>(x[o + c], x[o + c + 1u], x[o + c + 2u], x[o + c + 3u]) - mean;
        q4 += d * d;
    }
    var q1 = 0.0;
    for (var c = n4; c < n; c++) {
        let d = x[o + c] - mean;
        q1 += d * d;
    }
    let rstd = row_rstd(q4, q1, n);
    for (var c = 0u; c < n; c++) {
        y[o + c] = (x[o + c] - mean) * rstd * w[c] + b[c];
    }
    mean_out[p.r_base + r] = mean;
    rstd_out[p.r_base + r] = rstd;
}

@compute @workgroup_size(32)
fn layernorm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * ROW_WG + lid;
    if (r >= p.rows) {
        return;
    }
    let n = p.cols;
    let o = p.x_base + r * n;
    let mean = mean_in[p.r_base + r];
    let rstd = rstd_in[p.r_base + r];
    // Σ g and Σ g·xh, in two accumulators each.
    var sg = vec2<f32>(0.0);
    var sgx = vec2<f32>(0.0);
    let n2 = n & ~1u;
    for (var c = 0u; c < n2; c += 2u) {
        let g = vec2<f32>(dy[o + c] * w[c], dy[o + c + 1u] * w[c + 1u]);
        let xh = (vec2<f32>(x[o + c], x[o + c + 1u]) - mean) * rstd;
        sg += g;
        sgx += g * xh;
    }
    if (n2 < n) {
        let g = dy[o + n2] * w[n2];
        sg.x += g;
        sgx.x += g * (x[o + n2] - mean) * rstd;
    }
    let mg = (sg.x + sg.y) / f32(n);
    let mgx = (sgx.x + sgx.y) / f32(n);
    for (var c = 0u; c < n; c++) {
        let xh = (x[o + c] - mean) * rstd;
        dx[o + c] = rstd * (dy[o + c] * w[c] - mg - xh * mgx);
    }
}

// Mean and rstd of the row starting at vec4 `o` (n = C): the scalar
// entry's sums, with its (empty) tail kept so the expressions are its own.
fn row_stats4(o: u32, n: u32) -> vec2<f32> {
    let n4 = n >> 2u;
    var s4 = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c++) {
        s4 += x4[o + c];
    }
    var s1 = 0.0;
    let mean = row_mean(s4, s1, n);
    var q4 = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c++) {
        let d = x4[o + c] - mean;
        q4 += d * d;
    }
    var q1 = 0.0;
    return vec2<f32>(mean, row_rstd(q4, q1, n));
}

@compute @workgroup_size(32)
fn layernorm_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * ROW_WG + lid;
    if (r >= p.rows) {
        return;
    }
    let n = p.cols;
    let o = (p.x_base + r * n) >> 2u;
    let n4 = n >> 2u;
    let stats = row_stats4(o, n);
    let mean = stats.x;
    let rstd = stats.y;
    for (var c = 0u; c < n4; c++) {
        y4[o + c] = (x4[o + c] - mean) * rstd * w4[c] + b4[c];
    }
    mean_out[p.r_base + r] = mean;
    rstd_out[p.r_base + r] = rstd;
}

// Two layer norms of the same rows, inference only (GPT-NeoX's parallel
// residual normalises each block input twice, for attention and for the
// MLP): the statistics once, then y with (w, b) and y2 with (w2, b2), each
// element layernorm_forward4's value bit for bit. Nothing is saved.
@group(0) @binding(21) var<storage, read> w2_4: array<vec4<f32>>;
@group(0) @binding(22) var<storage, read> b2_4: array<vec4<f32>>;
@group(0) @binding(23) var<storage, read_write> y2_4: array<vec4<f32>>;

@compute @workgroup_size(32)
fn layernorm_pair_forward4(@builtin(workgroup_id) wg: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * ROW_WG + lid;
    if (r >= p.rows) {
        return;
    }
    let n = p.cols;
    let o = (p.x_base + r * n) >> 2u;
    let n4 = n >> 2u;
    let stats = row_stats4(o, n);
    for (var c = 0u; c < n4; c++) {
        let xh = x4[o + c] - stats.x;
        y4[o + c] = xh * stats.y * w4[c] + b4[c];
        y2_4[o + c] = xh * stats.y * w2_4[c] + b2_4[c];
    }
}

@compute @workgroup_size(32)
fn layernorm_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * ROW_WG + lid;
    if (r >= p.rows) {
        return;
    }
    let n = p.cols;
    let o = (p.x_base + r * n) >> 2u;
    let n4 = n >> 2u;
    let mean = mean_in[p.r_base + r];
    let rstd = rstd_in[p.r_base + r];
    // The scalar entry's pairs (c, c+1) then (c+2, c+3), in its order.
    var sg = vec2<f32>(0.0);
    var sgx = vec2<f32>(0.0);
    for (var c = 0u; c < n4; c++) {
        let d = dy4[o + c];
        let wv = w4[c];
        let xv = x4[o + c];
        let g0 = vec2<f32>(d.x * wv.x, d.y * wv.y);
        let xh0 = (vec2<f32>(xv.x, xv.y) - mean) * rstd;
        sg += g0;
        sgx += g0 * xh0;
        let g1 = vec2<f32>(d.z * wv.z, d.w * wv.w);
        let xh1 = (vec2<f32>(xv.z, xv.w) - mean) * rstd;
        sg += g1;
        sgx += g1 * xh1;
    }
    let mg = (sg.x + sg.y) / f32(n);
    let mgx = (sgx.x + sgx.y) / f32(n);
    for (var c = 0u; c < n4; c++) {
        let xh = (x4[o + c] - mean) * rstd;
        dx4[o + c] = rstd * (dy4[o + c] * w4[c] - mg - xh * mgx);
    }
}

// Grid: x = column tiles of 64, y = row blocks of this chunk.
@compute @workgroup_size(64)
fn layernorm_backward_weight_partial(@builtin(workgroup_id) wg: vec3<u32>,
                                     @builtin(local_invocation_index) lid: u32) {
    let col = wg.x * 64u + lid;
    if (col >= p.cols) {
        return;
    }
    let r0 = wg.y * p.blk_rows;
    let r1 = min(r0 + p.blk_rows, p.rows);
    var sw = 0.0;
    var sb = 0.0;
    for (var r = r0; r < r1; r++) {
        let i = p.x_base + r * p.cols + col;
        let g = dy[i];
        sw += g * (x[i] - mean_in[p.r_base + r]) * rstd_in[p.r_base + r];
        sb += g;
    }
    let out = (p.blk0 + wg.y) * p.cols + col;
    dw_part[out] = sw;
    db_part[out] = sb;
}

@compute @workgroup_size(64)
fn layernorm_backward_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let col = linear_group(wg, nwg) * 64u + lid;
    if (col >= p.cols) {
        return;
    }
    var sw = 0.0;
    var sb = 0.0;
    for (var k = 0u; k < p.nblk; k++) {
        sw += dw_part[k * p.cols + col];
        sb += db_part[k * p.cols + col];
    }
    dw[col] = sw;
    db[col] = sb;
}
