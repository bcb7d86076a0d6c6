// Row bodies of the fused cross-entropy / token log-prob kernels (see
// shaders/cross_entropy.wgsl for the shapes); included by both variants.
//
// One mechanism for both quantities: with z = x / T and lse = logsumexp(z),
//   out = scale * (lse - z[t])           (scale +1: loss, -1: log-prob)
//   dx_j = scale * dout * (softmax(z)_j - [j == t]) / T
// target -100 (the ignore index) gives out 0 and dx 0 and skips the row's
// reads; any other target outside [0, V) gives NaN so the bug is visible.
//#include common/logit_rows
//#include common/float_bits

@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(5) var<storage, read> lse_in: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;

const IGNORE_INDEX: i32 = -100;

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// Saves only lse [N]; no softmax copy is ever written.
fn cross_entropy_forward_row(row: u32, lane: u32, lanes: u32) {
    let t = targets[p.r_off + row];
    let base = p.x_off + row * p.v;
    var loss = 0.0;
    var lse = 0.0;
    if (t != IGNORE_INDEX) {
        lse = row_lse(base, lane, lanes);
        if (t >= 0 && u32(t) < p.v) {
            loss = p.scale * (lse - zx(base, u32(t)));
        } else {
            loss = nan();
        }
    }
    if (lane == 0u) {
        out[p.r_off + row] = loss;
        lse_out[p.r_off + row] = lse;
    }
}

// g * (softmax_j - [j == t]); ignored rows write exact zeros without reading
// the logits. (No NaN tests: float comparisons with NaN are unreliable.)
fn cross_entropy_grad(base: u32, j: u32, t: u32, lse: f32, g: f32, live: bool) {
    var d = 0.0;
    if (live) {
        d = g * (exp(zx(base, j) - lse) - select(0.0, 1.0, j == t));
    }
    dx[base + j] = flush_subnormal(d);
}

// Recomputes softmax from the saved lse on the fly: one read of the row.
fn cross_entropy_backward_row(row: u32, lane: u32, lanes: u32) {
    let t = targets[p.r_off + row];
    let base = p.x_off + row * p.v;
    let lse = lse_in[p.r_off + row];
    let valid = t >= 0 && u32(t) < p.v;
    let live = t != IGNORE_INDEX;
    let g = select(nan(), p.scale * dout[p.r_off + row] * p.inv_t, valid);
    let tj = select(p.v, u32(t), valid);
    var j = lane;
    for (; j + 3u * lanes < p.v; j += 4u * lanes) {
        cross_entropy_grad(base, j, tj, lse, g, live);
        cross_entropy_grad(base, j + lanes, tj, lse, g, live);
        cross_entropy_grad(base, j + 2u * lanes, tj, lse, g, live);
        cross_entropy_grad(base, j + 3u * lanes, tj, lse, g, live);
    }
    for (; j < p.v; j += lanes) {
        cross_entropy_grad(base, j, tj, lse, g, live);
    }
}
