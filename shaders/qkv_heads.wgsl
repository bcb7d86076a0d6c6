// qkv_heads: q, k and v out of a fused QKV projection in one pass, q and k
// rotated, each written into its own [B, T, H, D] destination. Inference
// only (no backward): it stands for rotary_slice(q), rotary_slice(k) and
// head_slice(v) where no gradient is wanted, and lets decoding write k and
// v straight into the KV cache instead of copying them there row by row.
//
// Source: qkv [B·T, S]; head h of part p (0 = q, 1 = k, 2 = v) starts at
// column col[p] + h·x_head_stride of its token's row (GPT-2's [q | k | v]
// or GPT-NeoX's per-head [q k v], see ops/head_slice.rs).
// Destination: token r = (b, t) = (r / seq, r % seq) of part p, head h,
// starts at off[p] + b·seq_stride[p] + t·H·D + h·D (a contiguous [B, T, H, D]
// tensor, or rows len .. len+T of a [B, capacity, H, D] cache).
// Rotation (q and k): rotary.wgsl's rotate_half form and arithmetic,
//   out1 = x1*cos - x2*sin,  out2 = x2*cos + x1*sin
// over dims j < rot_half (paired with j + rot_half), the other dims copied;
// rot_half = 0 copies everything (GPT-2). Positions are clamped to [0, P)
// like rotary.wgsl. Every element is the value of the passes it replaces,
// bit for bit (the same reads and the same arithmetic).
//
// One invocation per (token, head) takes q, k and v of that head in turn:
// the loops' bounds are uniform, so no lane runs another part's branch
// under a mask (llvmpipe would pay for every side).
//#include common/grid

struct QkvHeadsParams {
    rows: u32,          // tokens·heads in this dispatch
    heads: u32,         // H
    d: u32,             // D
    rot_half: u32,      // rot_dim / 2 (0: no rotation)
    seq: u32,           // T, tokens per sequence
    x_stride: u32,      // elements between consecutive tokens of qkv
    x_head_stride: u32, // elements between consecutive heads of one part
    x_off: u32,         // element of the first token's row in the x binding
    pos_off: u32,       // element of the first token in the positions binding
    max_pos: u32,       // P, rows of cos_sin
    q_col: u32,
    k_col: u32,
    v_col: u32,
    q_off: u32,         // element of the first token's destination in each binding
    k_off: u32,
    v_off: u32,
    q_seq_stride: u32,  // elements between consecutive sequences of each destination
    k_seq_stride: u32,
    v_seq_stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: QkvHeadsParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> cos_sin: array<f32>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> k: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;
// The same ranges as vec4s (qkv_heads4).
@group(0) @binding(7) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> cos_sin4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> q4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> k4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> v4: array<vec4<f32>>;

// Where (token, head) `row` reads and writes: where each part of its head
// starts in x (xq, xk, xv) and in its destination (oq, ok, ov), and where
// its position's row starts in cos_sin.
struct Row {
    xq: u32,
    xk: u32,
    xv: u32,
    oq: u32,
    ok: u32,
    ov: u32,
    table: u32,
}

fn row_at(row: u32) -> Row {
    let token = row / p.heads;
    let head = row % p.heads;
    let pos = u32(clamp(positions[p.pos_off + token], 0, i32(p.max_pos) - 1));
    // The head's start in x's token row, its sequence, and its offset inside
    // one sequence of any destination (t·H·D + h·D).
    let x = p.x_off + token * p.x_stride + head * p.x_head_stride;
    let b = token / p.seq;
    let t_h = ((token % p.seq) * p.heads + head) * p.d;
    var r: Row;
    r.xq = x + p.q_col;
    r.xk = x + p.k_col;
    r.xv = x + p.v_col;
    r.oq = p.q_off + b * p.q_seq_stride + t_h;
    r.ok = p.k_off + b * p.k_seq_stride + t_h;
    r.ov = p.v_off + b * p.v_seq_stride + t_h;
    r.table = pos * 2u * p.rot_half;
    return r;
}

@compute @workgroup_size(64)
fn qkv_heads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 64u + lid;
    if (i >= p.rows) {
        return;
    }
    let r = row_at(i);
    for (var j = 0u; j < p.rot_half; j++) {
        let c = cos_sin[r.table + j];
        let s = cos_sin[r.table + p.rot_half + j];
        let q1 = x[r.xq + j];
        let q2 = x[r.xq + j + p.rot_half];
        q[r.oq + j] = q1 * c - q2 * s;
        q[r.oq + j + p.rot_half] = q2 * c + q1 * s;
        let k1 = x[r.xk + j];
        let k2 = x[r.xk + j + p.rot_half];
        k[r.ok + j] = k1 * c - k2 * s;
        k[r.ok + j + p.rot_half] = k2 * c + k1 * s;
    }
    for (var j = 2u * p.rot_half; j < p.d; j++) {
        q[r.oq + j] = x[r.xq + j];
        k[r.ok + j] = x[r.xk + j];
    }
    for (var j = 0u; j < p.d; j++) {
        v[r.ov + j] = x[r.xv + j];
    }
}

// The same four dims at a time (rot_half, D, every stride, column and offset
// multiples of 4; the host decides): one vec4 load or store where the
// scalar entry makes four, each a loop over the SIMD lanes on llvmpipe.
@compute @workgroup_size(64)
fn qkv_heads4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 64u + lid;
    if (i >= p.rows) {
        return;
    }
    let r = row_at(i);
    for (var j = 0u; j < p.rot_half; j += 4u) {
        let c = cos_sin4[(r.table + j) >> 2u];
        let s = cos_sin4[(r.table + p.rot_half + j) >> 2u];
        let q1 = x4[(r.xq + j) >> 2u];
        let q2 = x4[(r.xq + j + p.rot_half) >> 2u];
        q4[(r.oq + j) >> 2u] = q1 * c - q2 * s;
        q4[(r.oq + j + p.rot_half) >> 2u] = q2 * c + q1 * s;
        let k1 = x4[(r.xk + j) >> 2u];
        let k2 = x4[(r.xk + j + p.rot_half) >> 2u];
        k4[(r.ok + j) >> 2u] = k1 * c - k2 * s;
        k4[(r.ok + j + p.rot_half) >> 2u] = k2 * c + k1 * s;
    }
    for (var j = 2u * p.rot_half; j < p.d; j += 4u) {
        q4[(r.oq + j) >> 2u] = x4[(r.xq + j) >> 2u];
        k4[(r.ok + j) >> 2u] = x4[(r.xk + j) >> 2u];
    }
    for (var j = 0u; j < p.d; j += 4u) {
        v4[(r.ov + j) >> 2u] = x4[(r.xv + j) >> 2u];
    }
}
