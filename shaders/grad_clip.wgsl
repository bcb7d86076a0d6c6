// grad_clip: global L2 norm of a list of gradients, and in-place clipping,
// entirely on the GPU (torch.nn.utils.clip_grad_norm_).
//
// Shapes: any number of f32 gradient tensors (chunks of at most one binding).
//   grad_clip_partials: per chunk, one sum of squares per workgroup into
//                       partials[y_off + wg] (grid-stride loop, one barrier).
//   grad_clip_norm:     one workgroup adds all partials in a fixed order:
//                       norm = sqrt(total), scale = min(1, max_norm / (norm + 1e-6)),
//                       or scale = 1 when the norm is NaN/Inf (the caller reads
//                       the norm and skips the step).
//   grad_clip_apply:    g *= scale.
// Not differentiable; nothing is saved.
//#include common/grid
//#include common/float_bits

struct ClipParams {
    n: u32,
    y_off: u32,
    max_norm: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: ClipParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;
@group(0) @binding(4) var<storage, read_write> scale: array<f32>;
@group(0) @binding(5) var<storage, read> scale_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> g: array<f32>;

const WG: u32 = 64u;
var<workgroup> lane: array<f32, WG>;

// Sum over lanes after one barrier; meaningful in invocation 0 only.
fn lane_total(lid: u32, s: f32) -> f32 {
    lane[lid] = s;
    workgroupBarrier();
    var t = 0.0;
    if (lid == 0u) {
        for (var l = 0u; l < WG; l++) {
            t += lane[l];
        }
    }
    return t;
}

@compute @workgroup_size(64)
fn grad_clip_partials(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = wg.x * WG + lid; i < p.n; i += nwg.x * WG) {
        let v = x[i];
        s += v * v;
    }
    let t = lane_total(lid, s);
    if (lid == 0u) {
        partials[p.y_off + wg.x] = t;
    }
}

@compute @workgroup_size(64)
fn grad_clip_norm(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        s += x[i];
    }
    let t = lane_total(lid, s);
    if (lid == 0u) {
        let nrm = sqrt(t);
        let finite = is_finite(nrm);
        norm[0] = nrm;
        scale[0] = select(1.0, min(1.0, p.max_norm / (nrm + 1e-6)), finite);
    }
}

@compute @workgroup_size(256)
fn grad_clip_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        g[i] = g[i] * scale_in[0];
    }
}
