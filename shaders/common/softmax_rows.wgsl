// Row bodies of softmax / log-softmax over the last dim of [N, V] (see
// shaders/softmax.wgsl for the shapes); included by both kernel variants.
// Binding 1 (`x`, common/logit_rows) holds x in forward and the saved y in
// backward.
//#include common/logit_rows
//#include common/float_bits

@group(0) @binding(2) var<storage, read> dy: array<f32>;
// forward: y; backward: dx.
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn softmax_write(base: u32, j: u32, lse: f32, log_space: bool) {
    let z = zx(base, j) - lse;
    dst[base + j] = select(flush_subnormal(exp(z)), z, log_space);
}

// Pass 1: online logsumexp of z = x / T. Pass 2: y = exp(z - lse) or z - lse.
fn softmax_forward_row(row: u32, lane: u32, lanes: u32) {
    let base = p.x_off + row * p.v;
    let lse = row_lse(base, lane, lanes);
    let log_space = p.mode == 1u;
    var j = lane;
    for (; j + 3u * lanes < p.v; j += 4u * lanes) {
        softmax_write(base, j, lse, log_space);
        softmax_write(base, j + lanes, lse, log_space);
        softmax_write(base, j + 2u * lanes, lse, log_space);
        softmax_write(base, j + 3u * lanes, lse, log_space);
    }
    for (; j < p.v; j += lanes) {
        softmax_write(base, j, lse, log_space);
    }
}

// softmax: sum dy * y; log-softmax: sum dy.
fn softmax_dot(base: u32, j: u32, log_space: bool) -> f32 {
    let g = dy[base + j];
    return select(g * x[base + j], g, log_space);
}

// softmax:     dx = y * (dy - s) / T,        s = sum dy * y
// log-softmax: dx = (dy - exp(y) * s) / T,   s = sum dy
fn softmax_grad(base: u32, j: u32, s: f32, log_space: bool) {
    let y = x[base + j];
    let g = dy[base + j];
    dst[base + j] = flush_subnormal(select(y * (g - s), g - exp(y) * s, log_space) * p.inv_t);
}

fn softmax_backward_row(row: u32, lane: u32, lanes: u32) {
    let base = p.x_off + row * p.v;
    let log_space = p.mode == 1u;
    var acc = vec4<f32>();
    var j = lane;
    for (; j + 3u * lanes < p.v; j += 4u * lanes) {
        acc += vec4<f32>(
            softmax_dot(base, j, log_space),
            softmax_dot(base, j + lanes, log_space),
            softmax_dot(base, j + 2u * lanes, log_space),
            softmax_dot(base, j + 3u * lanes, log_space),
        );
    }
    for (; j < p.v; j += lanes) {
        acc.x += softmax_dot(base, j, log_space);
    }
    let s = lanes_sum((acc.x + acc.y) + (acc.z + acc.w));
    j = lane;
    for (; j + 3u * lanes < p.v; j += 4u * lanes) {
        softmax_grad(base, j, s, log_space);
        softmax_grad(base, j + lanes, s, log_space);
        softmax_grad(base, j + 2u * lanes, s, log_space);
        softmax_grad(base, j + 3u * lanes, s, log_space);
    }
    for (; j < p.v; j += lanes) {
        softmax_grad(base, j, s, log_space);
    }
}
