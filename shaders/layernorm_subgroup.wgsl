// layernorm, GPU variant: ONE WORKGROUP (64 invocations) PER ROW, each
// invocation striding over the columns, sums reduced with subgroupAdd and then
// across the workgroup's subgroups through shared memory (one barrier per
// reduction; no assumption on the subgroup size). Shapes, saved values, math
// and params are those of `layernorm.wgsl`, whose weight-gradient kernels
// serve both variants. Not used on GL (no subgroups).
//#include common/layernorm_params

const WG: u32 = 64u;

// One slot per subgroup (at most WG of them) for each of a row's two
// reductions (forward: mean, then variance; backward: one pair of sums), so
// no second barrier is needed before a slot is reused.
var<workgroup> red: array<array<vec2<f32>, 64>, 2>;

// The workgroup's sum of `v` through reduction `k`'s slots.
fn workgroup_sum(v: vec2<f32>, k: u32, sg: u32, lane: u32, nsg: u32) -> vec2<f32> {
    let s = subgroupAdd(v);
    if (lane == 0u) {
        red[k][sg] = s;
    }
    workgroupBarrier();
    var t = vec2<f32>(0.0);
    for (var i = 0u; i < nsg; i++) {
        t += red[k][i];
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
    let mean = workgroup_sum(vec2<f32>(s, 0.0), 0u, sg, lane, nsg).x / f32(p.cols);
    var q = 0.0;
    for (var c = lid; c < n; c += WG) {
        let d = x[o + c] - mean;
        q += d * d;
    }
    let rstd = inverseSqrt(workgroup_sum(vec2<f32>(q, 0.0), 1u, sg, lane, nsg).x / f32(p.cols) + p.eps);
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
    let m = workgroup_sum(acc, 0u, sg, lane, nsg) / f32(p.cols);
    for (var c = lid; c < n; c += WG) {
        let xh = (x[o + c] - mean) * rstd;
        dx[o + c] = rstd * (dy[o + c] * w[c] - m.x - xh * m.y);
    }
}
