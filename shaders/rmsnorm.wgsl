// rmsnorm over the last dim (Llama's LlamaRMSNorm): x [N, C] (N = B·T rows),
// weight w [C], eps (`rms_norm_eps`):
//   y = w · (x · rstd),  rstd = 1 / sqrt(mean_c(x²) + eps)
// with f32 accumulation, as transformers computes it in float32. Forward
// writes y [N, C] and saves rstd [N]. Backward, with xh = x·rstd, g = dy·w:
//   dx = rstd · (g - xh · mean_c(g·xh)),  dw = Σ_rows dy·xh
//
// One invocation per row, no barriers (the layout that is fastest on CPU
// adapters; see layernorm.wgsl), the row sums in four interleaved f32
// accumulators. dw is a sum over rows, done race-free without atomics as in
// layernorm: `rmsnorm_backward_weight_partial` (one invocation per column and
// block of `blk_rows` rows) writes per-block partial sums and
// `rmsnorm_backward_weight` (one invocation per column) adds the blocks.
//
// The host splits N into row chunks that fit one storage binding: a chunk's
// [rows, C] bindings start `x_base` elements before its first row, its [rows]
// bindings `r_base` elements before.
//#include common/grid

struct RmsNormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    x_base: u32,
    r_base: u32,
    blk0: u32,
    blk_rows: u32,
    nblk: u32,
}

@group(0) @binding(0) var<uniform> p: RmsNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read> rstd_in: array<f32>;
// Weight gradient: partial sums [nblk, C] and the result [C].
@group(0) @binding(8) var<storage, read_write> dw_part: array<f32>;
@group(0) @binding(9) var<storage, read_write> dw: array<f32>;

const ROW_WG: u32 = 32u;

@compute @workgroup_size(32)
fn rmsnorm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * ROW_WG + lid;
    if (r >= p.rows) {
        return;
    }
    let n = p.cols;
    let o = p.x_base + r * n;
    let n4 = n & ~3u;
    var q4 = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c += 4u) {
        let v = vec4<f32>(x[o + c], x[o + c + 1u], x[o + c + 2u], x[o + c + 3u]);
        q4 += v * v;
    }
    var q1 = 0.0;
    for (var c = n4; c < n; c++) {
        q1 += x[o + c] * x[o + c];
    }
    let rstd = inverseSqrt(((q4.x + q4.y) + (q4.z + q4.w) + q1) / f32(n) + p.eps);
    for (var c = 0u; c < n; c++) {
        y[o + c] = w[c] * (x[o + c] * rstd);
    }
    rstd_out[p.r_base + r] = rstd;
}

@compute @workgroup_size(32)
fn rmsnorm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * ROW_WG + lid;
    if (r >= p.rows) {
        return;
    }
    let n = p.cols;
    let o = p.x_base + r * n;
    let rstd = rstd_in[p.r_base + r];
    // Σ g·xh in two accumulators.
    var s = vec2<f32>(0.0);
    let n2 = n & ~1u;
    for (var c = 0u; c < n2; c += 2u) {
        let g = vec2<f32>(dy[o + c] * w[c], dy[o + c + 1u] * w[c + 1u]);
        s += g * vec2<f32>(x[o + c], x[o + c + 1u]) * rstd;
    }
    if (n2 < n) {
        s.x += dy[o + n2] * w[n2] * x[o + n2] * rstd;
    }
    let mgx = (s.x + s.y) / f32(n);
    for (var c = 0u; c < n; c++) {
        dx[o + c] = rstd * (dy[o + c] * w[c] - x[o + c] * rstd * mgx);
    }
}

// Grid: x = column tiles of 64, y = row blocks of this chunk.
@compute @workgroup_size(64)
fn rmsnorm_backward_weight_partial(@builtin(workgroup_id) wg: vec3<u32>,
                                   @builtin(local_invocation_index) lid: u32) {
    let col = wg.x * 64u + lid;
    if (col >= p.cols) {
        return;
    }
    let r0 = wg.y * p.blk_rows;
    let r1 = min(r0 + p.blk_rows, p.rows);
    var sw = 0.0;
    for (var r = r0; r < r1; r++) {
        let i = p.x_base + r * p.cols + col;
        sw += dy[i] * (x[i] * rstd_in[p.r_base + r]);
    }
    dw_part[(p.blk0 + wg.y) * p.cols + col] = sw;
}

@compute @workgroup_size(64)
fn rmsnorm_backward_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let col = linear_group(wg, nwg) * 64u + lid;
    if (col >= p.cols) {
        return;
    }
    var sw = 0.0;
    for (var k = 0u; k < p.nblk; k++) {
        sw += dw_part[k * p.cols + col];
    }
    dw[col] = sw;
}
