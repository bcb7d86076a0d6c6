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

// Every entry that decodes through the table (nf4_word, nf4_elem) calls this
// first (all `lanes` invocations, in uniform control flow), then a
// workgroupBarrier before the first decode.
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

// The NF4 values of four codes (each 0..15) by a select tree on their bits
// (the exact f32 bits of bnb's codebook, as in src/quant/tables.rs NF4_BITS).
fn nf4_values(c: vec4<u32>) -> vec4<f32> {
    let z = vec4<u32>(0u);
    let b0 = (c & vec4<u32>(1u)) != z;
    let b1 = (c & vec4<u32>(2u)) != z;
    let b2 = (c & vec4<u32>(4u)) != z;
    let b3 = (c & vec4<u32>(8u)) != z;
    let a0 = select(vec4<f32>(bitcast<f32>(0xbf800000u)), vec4<f32>(bitcast<f32>(0xbf3239b1u)), b0);
    let a1 = select(vec4<f32>(bitcast<f32>(0xbf066b30u)), vec4<f32>(bitcast<f32>(0xbeca32a0u)), b0);
    let a2 = select(vec4<f32>(bitcast<f32>(0xbe91a24du)), vec4<f32>(bitcast<f32>(0xbe3d353fu)), b0);
    let a3 = select(vec4<f32>(bitcast<f32>(0xbdba7871u)), vec4<f32>(bitcast<f32>(0x00000000u)), b0);
    let a4 = select(vec4<f32>(bitcast<f32>(0x3da2faffu)), vec4<f32>(bitcast<f32>(0x3e24cae3u)), b0);
    let a5 = select(vec4<f32>(bitcast<f32>(0x3e7c04ddu)), vec4<f32>(bitcast<f32>(0x3ead033au)), b0);
    let a6 = select(vec4<f32>(bitcast<f32>(0x3ee1a4b8u)), vec4<f32>(bitcast<f32>(0x3f1007abu)), b0);
    let a7 = select(vec4<f32>(bitcast<f32>(0x3f3913b3u)), vec4<f32>(bitcast<f32>(0x3f800000u)), b0);
    let c0 = select(a0, a1, b1);
    let c1 = select(a2, a3, b1);
    let c2 = select(a4, a5, b1);
    let c3 = select(a6, a7, b1);
    return select(select(c0, c1, b2), select(c2, c3, b2), b3);
}

// The unscaled NF4 values of one word's 8 elements, in element order.
fn nf4_word(w: u32) -> Dec8 {
    let p0 = spairs[w & 0xFFu];
    let p1 = spairs[(w >> 8u) & 0xFFu];
    let p2 = spairs[(w >> 16u) & 0xFFu];
    let p3 = spairs[w >> 24u];
    return Dec8(vec4<f32>(p0, p1), vec4<f32>(p2, p3));
}

// nf4_word by the select tree alone, no table: on llvmpipe a per-lane table
// read is a loop over the lanes, while the tree is vector ALU work (measured
// 15% faster NF4 GEMV than the table, and 8% faster than half of each). The
// CPU-hot entries (GEMV, dequantize) use it; the fused tiled kernels keep the
// table, since the tree inlined into their unrolled decode multiplies
// llvmpipe's compile time.
fn nf4_word_alu(w: u32) -> Dec8 {
    let f = vec4<u32>(15u);
    let lo = nf4_values((vec4<u32>(w) >> vec4<u32>(4u, 0u, 12u, 8u)) & f);
    let hi = nf4_values((vec4<u32>(w) >> vec4<u32>(20u, 16u, 28u, 24u)) & f);
    return Dec8(lo, hi);
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
