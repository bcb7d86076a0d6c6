// Workgroup reductions for one-workgroup-per-row kernels: each invocation
// passes its partial, every invocation gets the (uniform) result. Needs
// `override WG` (a power of two ≤ MAX_WG) from the including shader.

const MAX_WG: u32 = 256u;

var<workgroup> red_f: array<f32, MAX_WG>;
var<workgroup> red_u: array<u32, MAX_WG>;

fn sum_f(lid: u32, v: f32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] = red_f[lid] + red_f[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

fn max_f(lid: u32, v: f32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] = max(red_f[lid], red_f[lid + s]);
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

fn sum_u(lid: u32, v: u32) -> u32 {
    red_u[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_u[lid] = red_u[lid] + red_u[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_u[0]);
    workgroupBarrier();
    return r;
}

fn min_u(lid: u32, v: u32) -> u32 {
    red_u[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_u[lid] = min(red_u[lid], red_u[lid + s]);
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_u[0]);
    workgroupBarrier();
    return r;
}

// Each invocation owns a contiguous chunk, so chunk order is index order.
