// SplitMix64 (the host's `rng::Rng`) on vec2<u32>(lo, hi) words, for
// kernels that continue a host stream without 64-bit integers.

fn mul32(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let lo = (ll & 0xffffu) | (mid << 16u);
    let hi = ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(lo, hi);
}

fn mul64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let l = mul32(a.x, b.x);
    return vec2<u32>(l.x, l.y + a.x * b.y + a.y * b.x);
}

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

// z ^ (z >> n) for 0 < n < 32.
fn xorshr(z: vec2<u32>, n: u32) -> vec2<u32> {
    return z ^ vec2<u32>((z.x >> n) | (z.y << (32u - n)), z.y >> n);
}

const GAMMA: vec2<u32> = vec2<u32>(0x7f4a7c15u, 0x9e3779b9u);

// The `draw`-th next_u64 after `state` (0-based), as a uniform in [0, 1)
// with 24 bits.
fn splitmix_unit(state: vec2<u32>, draw: u32) -> f32 {
    var z = add64(state, mul64(GAMMA, vec2<u32>(draw + 1u, 0u)));
    z = mul64(xorshr(z, 30u), vec2<u32>(0x1ce4e5b9u, 0xbf58476du));
    z = mul64(xorshr(z, 27u), vec2<u32>(0x133111ebu, 0x94d049bbu));
    z = xorshr(z, 31u);
    return f32(z.y >> 8u) * (1.0 / 16777216.0);
}
