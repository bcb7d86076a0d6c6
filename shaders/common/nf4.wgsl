// NF4 (bitsandbytes layout, double-quantized absmax) decoding, shared by the
// entries of qmatmul_nf4.wgsl. The including shader binds:
//   codes:    array<u32>        4-bit codes, 8 per word: element e is in byte e/2
//                               (little-endian within the word), the HIGH nibble
//                               for even e (bnb's packing)
//   absmax_q: array<u32>        the 8-bit absmax code of each 64-block, 4 per word
//   pairs:    array<vec2<f32>>  for each byte value b: (nf4[b >> 4], nf4[b & 15])
//   stats:    array<f32>        code8[0..256] (bnb's dynamic map), the offset at
//                               NF4_OFFSET, absmax2[i] at NF4_ABSMAX2 + i
// Dequantization is bit-exact with bnb: absmax = f32(code8[q]·absmax2) + offset,
// w = nf4[c]·absmax, every step rounded to f32.
//#include common/qgemm

const NF4_OFFSET: u32 = 256u;
const NF4_ABSMAX2: u32 = 260u;

// The byte-pair table, copied to workgroup memory: lookups there are several
// times cheaper on llvmpipe than per-lane reads of a storage buffer.
var<workgroup> spairs: array<vec2<f32>, 256>;

// Every entry that decodes calls this first (all `lanes` invocations, in
// uniform control flow), then a workgroupBarrier before the first decode.
fn nf4_load_pairs(lid: u32, lanes: u32) {
    for (var i = lid; i < 256u; i += lanes) {
        spairs[i] = pairs[i];
    }
}

// The absmax of 64-block b. `zero` is a runtime 0: selecting through it keeps
// the product a separately rounded f32 (bnb adds the offset in its own op), so
// the compiler cannot fuse multiply and add into one FMA.
fn nf4_absmax(b: u32, zero: u32) -> f32 {
    let q = (absmax_q[b >> 2u] >> ((b & 3u) * 8u)) & 0xFFu;
    let t = stats[q] * stats[NF4_ABSMAX2 + (b >> 8u)];
    return select(t, 0.0, zero != 0u) + stats[NF4_OFFSET];
}

// The unscaled NF4 values of one word's 8 elements, in element order.
fn nf4_word(w: u32) -> Dec8 {
    let p0 = spairs[w & 0xFFu];
    let p1 = spairs[(w >> 8u) & 0xFFu];
    let p2 = spairs[(w >> 16u) & 0xFFu];
    let p3 = spairs[w >> 24u];
    return Dec8(vec4<f32>(p0, p1), vec4<f32>(p2, p3));
}

// Element e (any alignment), dequantized.
fn nf4_elem(e: u32, zero: u32) -> f32 {
    let byte = (codes[e >> 3u] >> (((e >> 1u) & 3u) * 8u)) & 0xFFu;
    let pr = spairs[byte];
    return select(pr.y, pr.x, (e & 1u) == 0u) * nf4_absmax(e >> 6u, zero);
}

// Flat elements e0 .. e0+7 (e0 % 8 == 0: one word, one block), zero from `end` on.
fn nf4_decode8_flat(e0: u32, end: u32, zero: u32) -> Dec8 {
    let d = nf4_word(codes[e0 >> 3u]);
    let s = nf4_absmax(e0 >> 6u, zero);
    let i = vec4<u32>(e0) + vec4<u32>(0u, 1u, 2u, 3u);
    let lo = select(vec4<f32>(0.0), d.lo * s, i < vec4<u32>(end));
    let hi = select(vec4<f32>(0.0), d.hi * s, i + 4u < vec4<u32>(end));
    return Dec8(lo, hi);
}
