// rotary: GPT-NeoX rotary position embedding (rotate_half convention: dim i
// pairs with i + rot_dim/2, NOT interleaved pairs). Only the first rot_dim of
// the D dims of each head rotate; the rest pass through.
//
// Shapes: x and out are [B, T, H, D] views, each with its own token stride,
// head stride and element offset: the forward reads q or k straight out of a
// fused QKV projection into a contiguous out, and the backward writes dx
// back into the same columns of a (zeroed) fused gradient, so no separate
// head_slice pass runs for q and k. positions i32 [B, T], cos_sin f32
// [P, rot_dim] (per position rot_dim/2 cosines then rot_dim/2 sines, built
// on the host by RotaryTable).
// Positions are clamped to [0, P) so pads with any position never read out of
// bounds. Forward saves nothing; backward needs only positions and cos_sin.
//
// forward:  out1 = x1*cos - x2*sin,  out2 = x2*cos + x1*sin
// backward: the inverse (transposed) rotation of dy: same with sin negated.
//
// One invocation per (token, head, j) with j < D - rot_dim/2: j < rot_dim/2
// rotates the pair (j, j + rot_dim/2); larger j copies dim j + rot_dim/2.
// The host chunks tokens so that x and out ranges fit one storage binding.
//#include common/grid

struct RotaryParams {
    rows: u32,     // token*head rows in this chunk
    heads: u32,    // H
    d: u32,        // D
    rot_half: u32, // rot_dim / 2
    x_stride: u32, // elements between consecutive tokens in x
    x_off: u32,    // element of the chunk's first (token, head 0, dim 0) in the x binding
    out_off: u32,  // the same in the out binding
    pos_off: u32,  // element offset of the chunk in the positions binding
    max_pos: u32,  // P, rows of cos_sin
    x_head_stride: u32,   // elements between consecutive heads in x
    out_stride: u32,      // elements between consecutive tokens in out
    out_head_stride: u32, // elements between consecutive heads in out
}

@group(0) @binding(0) var<uniform> p: RotaryParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> cos_sin: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The same ranges as vec4s (the *4 entries).
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> cos_sin4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> out4: array<vec4<f32>>;

// Where row `row` (token, head) starts in x and in out.
fn row_bases(row: u32) -> vec2<u32> {
    let token = row / p.heads;
    let head = row % p.heads;
    return vec2<u32>(p.x_off + token * p.x_stride + head * p.x_head_stride,
                     p.out_off + token * p.out_stride + head * p.out_head_stride);
}

// Where row `row`'s position (clamped into the table) starts in cos_sin:
// rot_half cosines, then rot_half sines.
fn table_base(row: u32) -> u32 {
    let pos = u32(clamp(positions[p.pos_off + row / p.heads], 0, i32(p.max_pos) - 1));
    return pos * 2u * p.rot_half;
}

fn rotate(i: u32, sgn: f32) {
    let w = p.d - p.rot_half;
    if (i >= p.rows * w) {
        return;
    }
    let row = i / w;
    let j = i % w;
    let base = row_bases(row);
    let xb = base.x;
    let ob = base.y;
    if (j < p.rot_half) {
        let t = table_base(row);
        let c = cos_sin[t + j];
        let s = sgn * cos_sin[t + p.rot_half + j];
        let x1 = x[xb + j];
        let x2 = x[xb + j + p.rot_half];
        out[ob + j] = x1 * c - x2 * s;
        out[ob + j + p.rot_half] = x2 * c + x1 * s;
    } else {
        let k = j + p.rot_half;
        out[ob + k] = x[xb + k];
    }
}

@compute @workgroup_size(256)
fn rotary_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    rotate(linear_group(wg, nwg) * 256u + lid, 1.0);
}

@compute @workgroup_size(256)
fn rotary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    rotate(linear_group(wg, nwg) * 256u + lid, -1.0);
}

// The same four dims at a time (rot_half, D, strides and offsets multiples
// of 4; the host decides): invocation (token, head, quad q) with
// q < (D - rot_half) / 4 rotates dims 4q .. 4q+3 with their partners
// rot_half further when 4q < rot_half, else copies dims 4q + rot_half ...
// One vec4 load or store where the scalar entry makes four, each llvmpipe
// runs as a loop over the SIMD lanes; every element's math is the scalar
// entry's.
//
// With ROW_LOOP (CPU adapters; the host's choice) one invocation takes a
// whole (token, head) row, its quads in turn. On llvmpipe the lanes of a
// SIMD row run both sides of the per-quad branch under a mask: at
// rotary_pct 0.25 and D = 32, 1 quad in 7 rotates and every lane paid for a
// rotation and a copy.
override ROW_LOOP: bool = false;

fn rotate_quad(base: vec2<u32>, t: u32, j: u32, sgn: f32) {
    let xb = base.x;
    let ob = base.y;
    let c = cos_sin4[(t + j) >> 2u];
    let s = sgn * cos_sin4[(t + p.rot_half + j) >> 2u];
    let x1 = x4[(xb + j) >> 2u];
    let x2 = x4[(xb + j + p.rot_half) >> 2u];
    out4[(ob + j) >> 2u] = x1 * c - x2 * s;
    out4[(ob + j + p.rot_half) >> 2u] = x2 * c + x1 * s;
}

// Quad j >= rot_half passes dims j + rot_half .. +3 through.
fn copy_quad(base: vec2<u32>, j: u32) {
    let k = j + p.rot_half;
    out4[(base.y + k) >> 2u] = x4[(base.x + k) >> 2u];
}

fn rotate4(i: u32, sgn: f32) {
    let w = (p.d - p.rot_half) / 4u;
    if (ROW_LOOP) {
        if (i >= p.rows) {
            return;
        }
        let base = row_bases(i);
        let t = table_base(i);
        for (var j = 0u; j < p.rot_half; j += 4u) {
            rotate_quad(base, t, j, sgn);
        }
        for (var j = p.rot_half; j < 4u * w; j += 4u) {
            copy_quad(base, j);
        }
        return;
    }
    if (i >= p.rows * w) {
        return;
    }
    let row = i / w;
    let j = 4u * (i % w);
    let base = row_bases(row);
    if (j < p.rot_half) {
        rotate_quad(base, table_base(row), j, sgn);
    } else {
        copy_quad(base, j);
    }
}

@compute @workgroup_size(256)
fn rotary_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    rotate4(linear_group(wg, nwg) * 256u + lid, 1.0);
}

@compute @workgroup_size(256)
fn rotary_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    rotate4(linear_group(wg, nwg) * 256u + lid, -1.0);
}
