// Row bodies of the softmax entropy kernels (see shaders/entropy.wgsl for the
// shapes); included by both variants.
//
// With z = x / T and p = softmax(z): H = lse - sum p*z, computed in one
// streaming pass (common/logit_rows: row_entropy). Backward:
//   dx_j = -dH * p_j * (z_j - sum p*z) / T, p_j = exp(z_j - lse),
// one read of the row using the saved lse and mean = sum p*z.
//#include common/logit_rows
//#include common/float_bits

@group(0) @binding(2) var<storage, read_write> h: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read> lse_in: array<f32>;
@group(0) @binding(6) var<storage, read> mean_in: array<f32>;
@group(0) @binding(7) var<storage, read> dh: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;

fn entropy_forward_row(row: u32, lane: u32, lanes: u32) {
    let a = row_entropy(p.x_off + row * p.v, lane, lanes);
    let w = a.u / a.s; // sum p * (z - m) <= 0
    if (lane == 0u) {
        h[p.r_off + row] = log(a.s) - w;
        lse_out[p.r_off + row] = a.m + log(a.s);
        mean_out[p.r_off + row] = a.m + w;
    }
}

fn entropy_grad(base: u32, j: u32, lse: f32, mean: f32, g: f32) {
    let z = zx(base, j);
    // Clamped so that masked (-inf) logits give 0, not 0 * inf.
    dx[base + j] = flush_subnormal(g * exp(z - lse) * clamp_finite(z - mean));
}

fn entropy_backward_row(row: u32, lane: u32, lanes: u32) {
    let base = p.x_off + row * p.v;
    let lse = lse_in[p.r_off + row];
    let mean = mean_in[p.r_off + row];
    let g = -dh[p.r_off + row] * p.inv_t;
    var j = lane;
    for (; j + 3u * lanes < p.v; j += 4u * lanes) {
        entropy_grad(base, j, lse, mean, g);
        entropy_grad(base, j + lanes, lse, mean, g);
        entropy_grad(base, j + 2u * lanes, lse, mean, g);
        entropy_grad(base, j + 3u * lanes, lse, mean, g);
    }
    for (; j < p.v; j += lanes) {
        entropy_grad(base, j, lse, mean, g);
    }
}
