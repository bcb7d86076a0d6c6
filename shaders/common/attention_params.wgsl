// Shared by every attention kernel: the params struct, the key-padding mask
// and the causal window. Mirrors `AttnParams` in src/ops/attention.rs.
//
// Rows of q/out are (b, i, h) with i < tq and h < heads; rows of k/v are
// (b, j, g) with j < kv_stride (a cache of which the first tk positions are
// valid) and g < kv_heads. Grouped-query attention: kv_heads divides heads,
// and query head h reads KV head h / (heads / kv_heads); KV heads are shared,
// never copied (kv_heads == heads is multi-head attention). Query i
// may see key j iff j < key_end(i): with causal, j <= i + (tk - tq).
//#include common/grid

struct AttnParams {
    batch: u32,
    tq: u32,
    tk: u32,
    heads: u32,
    d: u32,
    kv_stride: u32,
    mask_stride: u32,
    // bit 0: causal, bit 1: a key-padding mask is bound.
    flags: u32,
    scale: f32,
    // scale * log2(e): kernels work in the exp2 domain.
    scale_log2: f32,
    kv_heads: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: AttnParams;
// [batch, mask_stride] i32: 1 = real token, 0 = padding.
@group(0) @binding(4) var<storage, read> kmask: array<i32>;

const NEG: f32 = -1e30;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

fn is_causal() -> bool {
    return (p.flags & 1u) != 0u;
}

// One past the last key that query i may see.
fn key_end(i: u32) -> u32 {
    if (is_causal()) {
        return min(i + 1u + p.tk - p.tq, p.tk);
    }
    return p.tk;
}

// The first query that may see key j.
fn query_start(j: u32) -> u32 {
    if (is_causal() && j + p.tq > p.tk) {
        return j + p.tq - p.tk;
    }
    return 0u;
}

// The KV head that query head h reads.
fn kv_head(h: u32) -> u32 {
    return h / (p.heads / p.kv_heads);
}

fn key_real(b: u32, j: u32) -> bool {
    return (p.flags & 2u) == 0u || kmask[b * p.mask_stride + j] != 0;
}
