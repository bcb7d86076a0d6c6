// elementwise: binary ops with one broadcast operand, and unary ops.
//
// Shapes: a, y, dy, da, gb are "full" tensors of N elements; b holds M
// elements and is read at b[(i / div) % M] for full element i (same shape:
// div = 1, M = N; bias [C] over [R, C]: div = 1, M = C; per-row scalar [R]
// over [R, C]: div = C, M = R; scalar: M = 1).
//
// Every launch covers one piece of n full elements starting at global index
// `base`. Full-size operands are bound from the same element, `off` words past
// their binding's start. b is bound from element `b_lo`, `b_off` words past
// its binding's start (the whole of b when it fits in one binding).
//
// Forward saves nothing itself: the Rust side keeps a and b (binary) or x / y
// (unary) for backward, as each derivative needs.
//#include common/grid

struct EwParams {
    n: u32,
    off: u32,
    base: u32,
    div: u32,
    modulo: u32,
    b_lo: u32,
    b_off: u32,
    // scale: y = alpha * x + beta; clamp: [alpha, beta].
    alpha: f32,
    beta: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Binary: 0 add, 1 sub, 2 mul, 3 div, 4 maximum, 5 minimum, 6 greater-than (1/0).
// Unary: 0 scale, 1 exp, 2 log, 3 sigmoid, 4 tanh, 5 relu, 6 square, 7 sqrt,
// 8 clamp, 9 abs, 10 log-sigmoid, 11 softplus.
override OP: u32 = 0u;

// elementwise_forward4's reads of b per 4 full elements: 0 four values, 1 one
// aligned vec4 (div = 1, modulo and offsets multiples of 4), 2 one value for
// all four (div a multiple of 4, or a scalar b), 3 mode 1 without the
// division and modulo (b has a's shape: div = 1 and modulo = N, so the
// element of b is base + k itself). A constant, not a uniform: llvmpipe runs every side of a
// uniform branch under a mask, so a runtime mode paid for the four scattered
// loads and eight integer divisions of mode 0 on every call (a same-shape
// add took 2.2x as long as with the constant).
override B_MODE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: EwParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// Unreduced gradient of b (full shape); the Rust side sums it over the broadcast.
@group(0) @binding(5) var<storage, read_write> gb: array<f32>;
// a, b and y as vec4s (elementwise_forward4).
@group(0) @binding(6) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> y4: array<vec4<f32>>;

fn elem(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_group(wg, nwg) * 256u + lid;
}

fn b_index(k: u32) -> u32 {
    return ((p.base + k) / p.div) % p.modulo - p.b_lo + p.b_off;
}

fn binary(x: f32, z: f32) -> f32 {
    switch OP {
        case 0u: { return x + z; }
        case 1u: { return x - z; }
        case 2u: { return x * z; }
        case 3u: { return x / z; }
        case 4u: { return max(x, z); }
        case 5u: { return min(x, z); }
        default: { return select(0.0, 1.0, x > z); }
    }
}

// y = a op b
@compute @workgroup_size(256)
fn elementwise_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let k = elem(wg, nwg, lid);
    if (k < p.n) {
        y[p.off + k] = binary(a[p.off + k], b[b_index(k)]);
    }
}

// The same, 4 full elements per invocation (n and off multiples of 4, the
// ranges 16-byte aligned; the host decides): one vec4 load of a, one store
// of y, and b as `b_mode` says, where llvmpipe runs each storage access as a
// loop over the SIMD lanes. Each element's value is the scalar entry's.
@compute @workgroup_size(256)
fn elementwise_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let q = elem(wg, nwg, lid);
    if (q >= p.n / 4u) {
        return;
    }
    let k = 4u * q;
    let x = a4[(p.off + k) >> 2u];
    var z: vec4<f32>;
    if (B_MODE == 3u) {
        z = b4[(p.base + k - p.b_lo + p.b_off) >> 2u];
    } else if (B_MODE == 1u) {
        z = b4[b_index(k) >> 2u];
    } else if (B_MODE == 2u) {
        z = vec4<f32>(b[b_index(k)]);
    } else {
        z = vec4<f32>(b[b_index(k)], b[b_index(k + 1u)], b[b_index(k + 2u)], b[b_index(k + 3u)]);
    }
    y4[(p.off + k) >> 2u] = vec4<f32>(binary(x.x, z.x), binary(x.y, z.y), binary(x.z, z.z),
                                      binary(x.w, z.w));
}

// da = dy * d(a op b)/da into y, and gb = dy * d(a op b)/db (unreduced) for
// mul, div, maximum, minimum (add/sub pass dy through on the Rust side).
// Ties of maximum/minimum split the gradient in halves, as torch does.
@compute @workgroup_size(256)
fn elementwise_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let k = elem(wg, nwg, lid);
    if (k >= p.n) {
        return;
    }
    let g = dy[p.off + k];
    let x = a[p.off + k];
    let z = b[b_index(k)];
    var ga = 0.0;
    var gz = 0.0;
    switch OP {
        case 2u: {
            ga = g * z;
            gz = g * x;
        }
        case 3u: {
            ga = g / z;
            gz = -g * x / (z * z);
        }
        case 4u, 5u: {
            let a_wins = select((x < z), (x > z), OP == 4u);
            let w = select(select(0.0, 1.0, a_wins), 0.5, x == z);
            ga = g * w;
            gz = g - ga;
        }
        default: {
            ga = g;
            gz = g;
        }
    }
    y[p.off + k] = ga;
    gb[p.off + k] = gz;
}

// y = alpha * b[(i / div) % M]: expands a reduced tensor back to full shape
// (the backward of sum/mean reductions).
@compute @workgroup_size(256)
fn elementwise_expand(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let k = elem(wg, nwg, lid);
    if (k < p.n) {
        y[p.off + k] = p.alpha * b[b_index(k)];
    }
}

fn sigmoid(x: f32) -> f32 {
    // Both branches stay finite: exp of a non-positive number never overflows.
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

// log(1 + e) for e in [0, 1], to about 1 ulp relative (WGSL has no log1p, and
// log(1 + e) rounds to 0 for e < 2^-24). Uses log(1 + e) = 2·atanh(s) with
// s = e / (2 + e) in [0, 1/3] and the odd series 2·Σ s^(2k+1)/(2k+1): every
// term is positive (no cancellation, so no reliance on exact rounding that
// fast-math compilers may reassociate away), and stopping after s^15 leaves a
// relative error below 2e-9.
fn log1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let q = s * s;
    let p = 1.0 + q * (1.0 / 3.0 + q * (1.0 / 5.0 + q * (1.0 / 7.0 + q * (1.0 / 9.0
        + q * (1.0 / 11.0 + q * (1.0 / 13.0 + q * (1.0 / 15.0)))))));
    return 2.0 * s * p;
}

// log σ(x) = min(x, 0) − log(1 + e^−|x|): no overflow, no underflow to −inf
// for x ≪ 0 (it tends to x), full precision for x ≫ 0 (it tends to −e^−x).
fn log_sigmoid(x: f32) -> f32 {
    return min(x, 0.0) - log1p_unit(exp(-abs(x)));
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + e^−|x|) = −log σ(−x).
fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log1p_unit(exp(-abs(x)));
}

fn unary(x: f32) -> f32 {
    switch OP {
        case 0u: { return p.alpha * x + p.beta; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: { return sigmoid(x); }
        // Clamped: some drivers compute tanh as a ratio of exponentials,
        // which overflows to NaN for large |x|; tanh(15) is 1.0 in f32.
        case 4u: { return tanh(clamp(x, -15.0, 15.0)); }
        case 5u: { return max(x, 0.0); }
        case 6u: { return x * x; }
        case 7u: { return sqrt(x); }
        case 8u: { return min(max(x, p.alpha), p.beta); }
        case 10u: { return log_sigmoid(x); }
        case 11u: { return softplus(x); }
        default: { return abs(x); }
    }
}

// y = f(x), x at binding 1.
@compute @workgroup_size(256)
fn elementwise_unary_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let k = elem(wg, nwg, lid);
    if (k < p.n) {
        y[p.off + k] = unary(a[p.off + k]);
    }
}

// dx = dy * f'(.), written to y. Binding 1 holds what forward saved: y for
// exp, sigmoid, tanh and sqrt; x for the others (scale ignores it).
// d log σ(x)/dx = σ(−x); d softplus(x)/dx = σ(x).
@compute @workgroup_size(256)
fn elementwise_unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
    let k = elem(wg, nwg, lid);
    if (k >= p.n) {
        return;
    }
    let g = dy[p.off + k];
    let s = a[p.off + k];
    var d = 0.0;
    switch OP {
        case 0u: { d = g * p.alpha; }
        case 1u: { d = g * s; }
        case 2u: { d = g / s; }
        case 3u: { d = g * s * (1.0 - s); }
        case 4u: { d = g * (1.0 - s * s); }
        case 5u: { d = select(0.0, g, s > 0.0); }
        case 6u: { d = 2.0 * g * s; }
        case 7u: { d = 0.5 * g / s; }
        case 8u: { d = select(0.0, g, s >= p.alpha && s <= p.beta); }
        case 10u: { d = g * sigmoid(-s); }
        case 11u: { d = g * sigmoid(s); }
        default: { d = g * sign(s); }
    }
    y[p.off + k] = d;
}
