// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
// 3", SC'11): a counter-based generator. philox4x32(counter, key) maps a
// 128-bit counter and a 64-bit key to four independent uniform u32s, so any
// element's random number is a pure function of (key, counter): reproducible,
// and independent of how the work is split into invocations or dispatches.
//
// WGSL has no 32x32 -> 64-bit multiply; the high word is assembled from 16-bit
// halves.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// High 32 bits of the 64-bit product a·b.
fn mul_hi_u32(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    // Carry out of the middle column: each term < 2^32, summed in pieces.
    let mid = (lo_lo >> 16u) + (hi_lo & 0xFFFFu) + (lo_hi & 0xFFFFu);
    return hi_hi + (hi_lo >> 16u) + (lo_hi >> 16u) + (mid >> 16u);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let hi0 = mul_hi_u32(PHILOX_M0, c.x);
    let lo0 = PHILOX_M0 * c.x;
    let hi1 = mul_hi_u32(PHILOX_M1, c.z);
    let lo1 = PHILOX_M1 * c.z;
    return vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
}

fn philox4x32(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 9u; r++) {
        c = philox_round(c, k);
        k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    return philox_round(c, k);
}
