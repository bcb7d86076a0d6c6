// Row buffers of the flash kernels (attention.wgsl, attention_cpu.wgsl) as
// vec4 (head dim d is a multiple of 4, at most 128), the row addressing, and
// the backward pre-pass that both variants share.
//#include common/attention_params

@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
// [batch, heads, tq]: natural-log logsumexp of the scaled scores (0 for a row
// that sees no key).
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<vec4<f32>>;
// [batch, heads, tq] of (lse * log2(e), rowsum(dout * out)), from the pre-pass.
@group(0) @binding(8) var<storage, read_write> stats: array<vec2<f32>>;
@group(0) @binding(9) var<storage, read_write> dq: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> dk: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> dv: array<vec4<f32>>;
// The saved forward output, read-only for the backward pre-pass.
@group(0) @binding(12) var<storage, read> out_saved: array<vec4<f32>>;

const DMAX4: u32 = 32u;
// D / 4, set per pipeline: with a constant trip count every loop over the
// head dim unrolls and the private row arrays become registers. A runtime
// bound made the compilers lower each array access to a branch ladder
// (10-36 s to compile, and slow to run).
override D4: u32 = 16u;

// First vec4 of query/output row (b, i, h).
fn q_base(b: u32, i: u32, h: u32) -> u32 {
    return ((b * p.tq + i) * p.heads + h) * (p.d / 4u);
}

// First vec4 of key/value row (b, j, g) in the cache, g a KV head.
fn kv_base(b: u32, j: u32, g: u32) -> u32 {
    return ((b * p.kv_stride + j) * p.kv_heads + g) * (p.d / 4u);
}

// Where an invocation's row lies. Each workgroup (linear id `g`) takes `per`
// consecutive rows (of `rows`) of one (b, h) of `heads` heads (query heads
// for query rows, KV heads for key rows); this invocation has row first +
// lid, which may be past the end (it then only helps with loads).
struct RowBlock {
    bh: u32, // b * heads + h; >= batch * heads marks a group past the end
    b: u32,
    h: u32,
    first: u32,
    row: u32,
}

fn row_block(g: u32, lid: u32, rows: u32, per: u32, heads: u32) -> RowBlock {
    let blocks = (rows + per - 1u) / per;
    let bh = g / blocks;
    let first = (g % blocks) * per;
    return RowBlock(bh, bh / heads, bh % heads, first, first + lid);
}

fn past_end(r: RowBlock, heads: u32) -> bool {
    return r.bh >= p.batch * heads;
}

// Backward pre-pass, one invocation per (b, h, i): the two per-row scalars
// that both gradient passes need, packed so those passes bind few buffers.
@compute @workgroup_size(64)
fn attention_backward_prep(@builtin(workgroup_id) wg: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * 64u + lid;
    if (row >= p.batch * p.heads * p.tq) {
        return;
    }
    let i = row % p.tq;
    let h = (row / p.tq) % p.heads;
    let b = row / (p.tq * p.heads);
    let o = q_base(b, i, h);
    var acc = vec4<f32>(0.0);
    for (var d = 0u; d < D4; d++) {
        acc += dout[o + d] * out_saved[o + d];
    }
    stats[row] = vec2<f32>(lse[row] * LOG2E, acc.x + acc.y + acc.z + acc.w);
}
