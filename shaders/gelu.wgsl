// gelu: y = gelu(x) elementwise over any shape (n elements per dispatch).
//
// Two forms, chosen by the KIND override (a pipeline each: llvmpipe runs
// every side of a uniform branch under a mask, so a runtime kind made each
// call evaluate both forms, about 20% of the time):
//   0 = tanh approximation (GPT-2 `gelu_new`):
//       0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³)
//   1 = exact (Pythia/NeoX `gelu`): x·Φ(x) = 0.5·x·(1 + erf(x/√2))
// Forward saves nothing beyond its input x; backward computes
// dx = dy·gelu'(x) from x and dy.
//
// tanh is never called: 1 + tanh(u) = 2·σ(2u), and σ is evaluated from
// exp(-2|u|) <= 1, which cannot overflow for any input (some drivers' tanh
// returns NaN for large |u|), and keeps full relative accuracy for very
// negative x where 1 + tanh(u) would cancel.
//
// Tensors larger than one storage binding are split by the host into chunks
// whose bindings start at element 0 (`elem_chunks`), so `n` is per chunk.
//#include common/grid
//#include common/normal

struct GeluParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override KIND: u32 = 0u;

@group(0) @binding(0) var<uniform> p: GeluParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The same ranges as vec4s (the *4 entries).
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;

// vec2(σ(2u), 1 - σ(2u)), both without cancellation or overflow.
fn sigmoid2_pair(u: f32) -> vec2<f32> {
    let e = exp(-2.0 * abs(u));
    let r = 1.0 / (1.0 + e);
    let hi = r;
    let lo = e * r;
    return select(vec2<f32>(lo, hi), vec2<f32>(hi, lo), u >= 0.0);
}

fn gelu_tanh_u(v: f32) -> f32 {
    return SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
}

fn gelu_value(v: f32) -> f32 {
    if (KIND == 0u) {
        return v * sigmoid2_pair(gelu_tanh_u(v)).x;
    }
    return v * normal_cdf(v);
}

// gelu'(v).
fn gelu_slope(v: f32) -> f32 {
    if (KIND == 0u) {
        // d/dx x·σ(2u) = σ + x·2σ(1-σ)·u'. Once σ(1-σ) underflows to 0 the
        // second term is skipped, so x³ overflowing to inf cannot give inf·0.
        let s = sigmoid2_pair(gelu_tanh_u(v));
        let w = s.x * s.y;
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * v * v);
        return s.x + select(0.0, 2.0 * v * w * du, w > 0.0);
    }
    // d/dx x·Φ(x) = Φ(x) + x·φ(x).
    let cp = normal_cdf_pdf(v);
    return cp.x + select(0.0, v * cp.y, cp.y > 0.0);
}

@compute @workgroup_size(256)
fn gelu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        out[i] = gelu_value(x[i]);
    }
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        out[i] = dy[i] * gelu_slope(x[i]);
    }
}

// The same over vec4s (n a multiple of 4, ranges 16-byte aligned; the host
// decides): one load and one store per 4 elements, where llvmpipe runs each
// storage access as a loop over the SIMD lanes. Each element's math is the
// scalar entry's.
@compute @workgroup_size(256)
fn gelu_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n / 4u) {
        let v = x4[i];
        out4[i] = vec4<f32>(gelu_value(v.x), gelu_value(v.y), gelu_value(v.z), gelu_value(v.w));
    }
}

@compute @workgroup_size(256)
fn gelu_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n / 4u) {
        let v = x4[i];
        let d = vec4<f32>(gelu_slope(v.x), gelu_slope(v.y), gelu_slope(v.z), gelu_slope(v.w));
        out4[i] = dy4[i] * d;
    }
}
