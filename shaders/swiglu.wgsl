// swiglu: the elementwise part of Llama's MLP, h = silu(g) · u with
// silu(g) = g · σ(g), over any shape (n elements per dispatch). g and u are
// two tensors (the outputs of gate_proj and up_proj), not one [.., 2I] tensor:
// see src/ops/swiglu.rs for why. Forward saves nothing beyond g and u;
// backward gives both gradients in one pass:
//   du = dh · silu(g),  dg = dh · u · σ(g) · (1 + g · (1 - σ(g)))
//
// σ is evaluated from exp(-|g|) <= 1, so exp never overflows for any input
// and both σ and 1 - σ keep full relative accuracy in the tails. Once
// σ(1 - σ) underflows to 0 the g·σ(1 - σ) term is skipped, so g = ±inf cannot
// give inf·0.
//
// Tensors larger than one storage binding are split by the host into chunks
// whose bindings start at element 0 (`elem_chunks`), so `n` is per chunk.
//#include common/grid

struct SwigluParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: SwigluParams;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read> dh: array<f32>;
// Forward: h. Backward: dg.
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// Backward: du.
@group(0) @binding(5) var<storage, read_write> du: array<f32>;

// vec2(σ(v), 1 - σ(v)) without cancellation or overflow.
fn sigmoid_pair(v: f32) -> vec2<f32> {
    let e = exp(-abs(v));
    let r = 1.0 / (1.0 + e);
    return select(vec2<f32>(e * r, r), vec2<f32>(r, e * r), v >= 0.0);
}

@compute @workgroup_size(256)
fn swiglu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let v = g[i];
    out[i] = v * sigmoid_pair(v).x * u[i];
}

@compute @workgroup_size(256)
fn swiglu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let v = g[i];
    let s = sigmoid_pair(v);
    let w = s.x * s.y;
    let d = dh[i];
    du[i] = d * (v * s.x);
    out[i] = d * u[i] * (s.x + select(0.0, v * w, w > 0.0));
}
