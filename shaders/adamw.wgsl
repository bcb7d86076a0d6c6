// adamw: one in-place AdamW step over n f32 elements (PyTorch semantics).
//
// Shapes: param, grad, m (exp_avg), v (exp_avg_sq) all hold the same N
// elements. Not differentiable: nothing is saved. The host folds the step
// count into `step_size = lr / (1 - beta1^t)` and `bc2_sqrt = sqrt(1 - beta2^t)`
// (in f64) and the decay into `decay = 1 - lr * weight_decay`, as torch does:
//   p <- p * decay
//   m <- beta1 m + (1 - beta1) g
//   v <- beta2 v + (1 - beta2) g^2
//   p <- p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
// `adamw_clipped` first scales g by the global-norm clipping scale.
//#include common/grid

struct AdamwParams {
    n: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: AdamwParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

// The gradient scale of global-norm clipping, [1] (adamw_clipped only).
@group(0) @binding(5) var<storage, read> grad_scale: array<f32>;

fn update(i: u32, g: f32) {
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
    param[i] = param[i] * p.decay - p.step_size * mi / denom;
}

@compute @workgroup_size(256)
fn adamw_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        update(i, grad[i]);
    }
}

// The step on the clipped gradient g·scale (grad_clip_norm's scale), the
// value grad_clip_apply would have stored, without the pass that stores it.
@compute @workgroup_size(256)
fn adamw_clipped(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        update(i, grad[i] * grad_scale[0]);
    }
}
