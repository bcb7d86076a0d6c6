// layernorm, GPU variant: ONE WORKGROUP (64 invocations) PER ROW, each
// invocation striding over the columns, sums reduced with subgroupAdd and then
// across the workgroup's subgroups through shared memory (one barrier per
// reduction; no assumption on the subgroup size). Shapes, saved values, math
// and params are those of `layernorm.wgsl`, whose weight-gradient kernels
// serve both variants. Not used on GL (no subgroups).
//#include common/grid

struct LayerNormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    x_base: u32,
    r_base: u32,
    blk0: u32,
    blk_rows: u32,
    nblk: u32,
}

@group(0) @binding(0) var<uniform> p: LayerNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read> mean_in: array<f32>;
@group(0) @binding(10) var<storage, read> rstd_in: array<f32>;

const WG: u32 = 64u;

// One slot per subgroup (at most WG of them). Each reduction has its own
// array, so no second barrier is needed before a slot is reused.
var<workgroup> red_mean: array<f32, 64>;
var<workgroup> red_var: array<f32, 64>;
var<workgroup> red_bwd: array<vec2<f32>, 64>;

fn sum_mean(v: f32, sg: u32, lane: u32, nsg: u32) -> f32 {
    let s = subgroupAdd(v);
    if (lane == 0u) {
        red_mean[sg] = s;
    }
    workgroupBarrier();
    var t = 0.0;
    for (var i = 0u; i < nsg; i++) {
        t += red_mean[i];
    }
    return t;
}

fn sum_var(v: f32, sg: u32, lane: u32, nsg: u32) -> f32 {
    let s = subgroupAdd(v);
    if (lane == 0u) {
        red_var[sg] = s;
    }
    workgroupBarrier();
    var t = 0.0;
    for (var i = 0u; i < nsg; i++) {
        t += red_var[i];
    }
    return t;
}

fn sum_bwd(v: vec2<f32>, sg: u32, lane: u32, nsg: u32) -> vec2<f32> {
    let s = subgroupAdd(v);
    if (lane == 0u) {
        red_bwd[sg] = s;
    }
    workgroupBarrier();
    var t = vec2<f32>(0.0);
    for (var i = 0u; i < nsg; i++) {
        t += red_bwd[i];
    }
    return t;
}

@compute @workgroup_size(64)
fn layernorm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_id) sg: u32,
                     @builtin(subgroup_invocation_id) lane: u32,
                     @builtin(num_subgroups) nsg: u32) {
    // Every invocation reaches the barriers; a spare workgroup of a folded
    // grid (r >= rows) just loads and stores nothing.
    let r = linear_group(wg, nwg);
    let n = select(0u, p.cols, r < p.rows);
    let o = p.x_base + r * p.cols;
    var s = 0.0;
    for (var c = lid; c < n; c += WG) {
        s += x[o + c];
    }
    let mean = sum_mean(s, sg, lane, nsg) / f32(p.cols);
    var q = 0.0;
    for (var c = lid; c < n; c += WG) {
        let d = x[o + c] - mean;
        q += d * d;
    }
    let rstd = inverseSqrt(sum_var(q, sg, lane, nsg) / f32(p.cols) + p.eps);
    for (var c = lid; c < n; c += WG) {
        y[o + c] = (x[o + c] - mean) * rstd * w[c] + b[c];
    }
    if (lid == 0u && r < p.rows) {
        mean_out[p.r_base + r] = mean;
        rstd_out[p.r_base + r] = rstd;
    }
}

@compute @workgroup_size(64)
fn layernorm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32,
                      @builtin(subgroup_id) sg: u32,
                      @builtin(subgroup_invocation_id) lane: u32,
                      @builtin(num_subgroups) nsg: u32) {
    let r = linear_group(wg, nwg);
    let valid = r < p.rows;
    let n = select(0u, p.cols, valid);
    let o = p.x_base + r * p.cols;
    var mean = 0.0;
    var rstd = 0.0;
    if (valid) {
        mean = mean_in[p.r_base + r];
        rstd = rstd_in[p.r_base + r];
    }
    var acc = vec2<f32>(0.0);
    for (var c = lid; c < n; c += WG) {
        let g = dy[o + c] * w[c];
        acc += vec2<f32>(g, g * (x[o + c] - mean) * rstd);
    }
    let m = sum_bwd(acc, sg, lane, nsg) / f32(p.cols);
    for (var c = lid; c < n; c += WG) {
        let xh = (x[o + c] - mean) * rstd;
        dx[o + c] = rstd * (dy[o + c] * w[c] - m.x - xh * m.y);
    }
}
