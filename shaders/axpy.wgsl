// axpy: y[i] += alpha * x[i] over n elements, in place.
//
// Not differentiable: the tape uses it to accumulate gradients, and optimizers
// to update buffers, so it has no tape entry and no backward.
//#include common/grid

struct AxpyParams {
    n: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: AxpyParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// The same ranges as vec4s (axpy4).
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        y[i] = y[i] + p.alpha * x[i];
    }
}

// Four elements per invocation (n a multiple of 4; the host decides): one
// load of each operand and one store where llvmpipe would loop over its SIMD
// lanes four times. Each element's arithmetic is axpy's.
@compute @workgroup_size(256)
fn axpy4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n / 4u) {
        y4[i] = y4[i] + p.alpha * x4[i];
    }
}

// Out of place: out[i] = y[i] + alpha * x[i], y left as it was (the tape's
// first accumulation into a gradient it does not own, which would otherwise
// copy y first). The same arithmetic as axpy, so the same bits.
@group(0) @binding(5) var<storage, read> y_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> y_in4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn axpy_into(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        out[i] = y_in[i] + p.alpha * x[i];
    }
}

@compute @workgroup_size(256)
fn axpy4_into(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n / 4u) {
        out4[i] = y_in4[i] + p.alpha * x4[i];
    }
}
