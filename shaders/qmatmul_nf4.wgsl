// qmatmul_nf4: matmuls against a frozen NF4 weight (bitsandbytes layout with
// double quantization), plus its GPU quantizer and dequantizer.
//
// Shapes: W [N, K] (nn.Linear layout, flattened row-major, 64-element blocks
// along the flattened weight); x [M, K]; y [M, N]; bias [N]; dy [M, N]; dx [M, K].
//   qmatmul_nf4_forward   y = x · Wᵀ (+ bias)      register-blocked; a tile decoded once per workgroup
//   qmatmul_nf4_gemv      the same for M = 1        one invocation per output, streams the codes
//   qmatmul_nf4_backward  dx = dy · W               (the weight is frozen: no dW)
//   (the three take the optional LoRA epilogue, common/lora_epilogue.wgsl: + s·U·Vᵀ)
//   nf4_quantize          w → codes + f32 absmax per 64-block (bnb's rounding)
//   nf4_absmax_sum        one level of the fixed-order tree sum of the absmax
//   nf4_absmax_quantize   double quantization of absmax - mean (bnb's CPU LUT rounding)
//   nf4_dequantize        codes → f32 W (nf4_dequantize_vec4: the same, aligned vec4 stores)
// Forward saves nothing: backward needs only dy and the (frozen) weight.
//#include common/nf4
//#include common/grid

@group(0) @binding(0) var<uniform> p: QgemmParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> codes: array<u32>;
@group(0) @binding(6) var<storage, read> codes4: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read> absmax_q: array<u32>;
@group(0) @binding(8) var<storage, read> pairs: array<vec2<f32>>;
@group(0) @binding(9) var<storage, read> stats: array<f32>;

fn decode8(row: u32, col: u32, col_end: u32) -> Dec8 {
    let e0 = row * p.wk + col;
    if (p.wk % 8u == 0u) {
        return nf4_decode8_flat(e0, e0 - col + col_end, p.zero);
    }
    var v: array<f32, 8>;
    v[0] = select(0.0, nf4_elem(e0, p.zero), col < col_end);
    v[1] = select(0.0, nf4_elem(e0 + 1u, p.zero), col + 1u < col_end);
    v[2] = select(0.0, nf4_elem(e0 + 2u, p.zero), col + 2u < col_end);
    v[3] = select(0.0, nf4_elem(e0 + 3u, p.zero), col + 3u < col_end);
    v[4] = select(0.0, nf4_elem(e0 + 4u, p.zero), col + 4u < col_end);
    v[5] = select(0.0, nf4_elem(e0 + 5u, p.zero), col + 5u < col_end);
    v[6] = select(0.0, nf4_elem(e0 + 6u, p.zero), col + 6u < col_end);
    v[7] = select(0.0, nf4_elem(e0 + 7u, p.zero), col + 7u < col_end);
    return Dec8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

@compute @workgroup_size(32)
fn qmatmul_nf4_forward(@builtin(workgroup_id) wg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    nf4_load_pairs(lid, FLANES); // qgemm_forward's first barrier publishes it
    qgemm_forward(wg, lid);
}

@compute @workgroup_size(8)
fn qmatmul_nf4_backward(@builtin(workgroup_id) wg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    nf4_load_pairs(lid, QLANES); // qgemm_backward's first barrier publishes it
    qgemm_backward(wg, lid);
}

// 8 weights of one word against x[xe .. xe+8] (xe % 4 == 0).
fn dot_word(w: u32, xe: u32) -> f32 {
    let d = nf4_word_alu(w);
    return dot(d.lo, x4[xe >> 2u]) + dot(d.hi, x4[(xe >> 2u) + 1u]);
}

// M = 1 (generation): one invocation per output n streams its row of codes
// (2 vec4<u32> = 64 codes per block) with one absmax per block, reading ~0.52
// bytes per weight (on llvmpipe decoding, not memory, bounds it; the select
// tree of nf4_word_alu needs no table, so no workgroup memory or barrier).
// Host guarantees K % 64 == 0 (else it uses the forward entry) and x_off = 0.
// x is read at addresses common to all lanes (cheap on llvmpipe).
@compute @workgroup_size(64)
fn qmatmul_nf4_gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let n = linear_group(wg, nwg) * 64u + lid;
    if (n >= p.wn) {
        return;
    }
    let nb = p.wk / 64u;
    var acc = 0.0;
    for (var b = 0u; b < nb; b++) {
        let blk = n * nb + b;
        let q0 = codes4[blk * 2u];
        let q1 = codes4[blk * 2u + 1u];
        let xe = b * 64u;
        var part = dot_word(q0.x, xe) + dot_word(q0.y, xe + 8u);
        part += dot_word(q0.z, xe + 16u) + dot_word(q0.w, xe + 24u);
        part += dot_word(q1.x, xe + 32u) + dot_word(q1.y, xe + 40u);
        part += dot_word(q1.z, xe + 48u) + dot_word(q1.w, xe + 56u);
        acc += part * nf4_absmax(blk, p.zero);
    }
    if (LORA) {
        acc += lora_term(p.lora, 0u, n);
    }
    store_out(0u, n, acc);
}

// ---- quantization and dequantization (QuantParams at binding 0) ----

struct QuantParams {
    count: u32,   // work items of this dispatch (blocks / groups / elements)
    base: u32,    // global index of the first item (an input count for the sum)
    src_off: u32, // residual element offset of the source binding `x`
    dst_off: u32, // residual element offset of the destination binding `y`
    numel: u32,   // weight elements N·K
    blocks: u32,  // 64-blocks of the weight
    zero: u32,    // always 0 (see nf4_absmax)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> q: QuantParams;
@group(0) @binding(12) var<storage, read_write> codes_out: array<u32>;
@group(0) @binding(13) var<storage, read> lut: array<u32>;
@group(0) @binding(14) var<storage, read_write> absmax_q_out: array<u32>;
@group(0) @binding(15) var<storage, read_write> stats_out: array<f32>;

// NF4 decision bounds (code[i] + code[i+1]) / 2, exact f32 bits from the host.
fn nf4_code_of(v: f32) -> u32 {
    let b0 = vec4<f32>(bitcast<f32>(0xbf591cd8u), bitcast<f32>(0xbf1c5270u),
                       bitcast<f32>(0xbeeb8480u), bitcast<f32>(0xbeadea76u));
    let b1 = vec4<f32>(bitcast<f32>(0xbe703cecu), bitcast<f32>(0xbe0d38bcu),
                       bitcast<f32>(0xbd3a7871u), bitcast<f32>(0x3d22faffu));
    let b2 = vec4<f32>(bitcast<f32>(0x3df64862u), bitcast<f32>(0x3e5067e0u),
                       bitcast<f32>(0x3e9582d4u), bitcast<f32>(0x3ec753f9u));
    let b3 = vec4<f32>(bitcast<f32>(0x3f006d04u), bitcast<f32>(0x3f248dafu),
                       bitcast<f32>(0x3f5c89dau), 2.0);
    let one = vec4<u32>(1u);
    let zero = vec4<u32>(0u);
    // torch.bucketize (right=False): the number of bounds strictly below v.
    let c = select(zero, one, b0 < vec4<f32>(v)) + select(zero, one, b1 < vec4<f32>(v)) +
            select(zero, one, b2 < vec4<f32>(v)) + select(zero, one, b3 < vec4<f32>(v));
    return c.x + c.y + c.z + c.w;
}

// One invocation per 64-block (bnb's quantize_4bit): absmax to y[block],
// codes to the block's 8 words. Full blocks scale by the reciprocal of the
// absmax, a short last block divides by max(absmax, 1e-38) and stores that.
@compute @workgroup_size(64)
fn nf4_quantize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = linear_group(wg, nwg) * 64u + lid;
    if (g >= q.count) {
        return;
    }
    let b = q.base + g;
    let len = min(64u, q.numel - b * 64u);
    let src = q.src_off + g * 64u;
    var am = 0.0;
    for (var i = 0u; i < len; i++) {
        am = max(am, abs(x[src + i]));
    }
    let full = len == 64u;
    var stored = am;
    if (!full) {
        stored = max(am, bitcast<f32>(0x006ce3eeu)); // 1e-38 (a subnormal: kept as bits)
    }
    y[b] = stored;
    let r = 1.0 / am;
    for (var j = 0u; j < 8u; j++) {
        var word = 0u;
        for (var i = 0u; i < 8u; i++) {
            let t = j * 8u + i;
            var c = 0u;
            if (t < len) {
                let w = x[src + t];
                var v = 0.0;
                if (am > 0.0) {
                    v = select(w / am, w * r, full);
                }
                c = nf4_code_of(clamp(v, -1.0, 1.0));
            } else if (b * 64u + t == q.numel && (q.numel & 1u) == 1u) {
                c = nf4_code_of(0.0); // bnb pads an odd count with a zero
            }
            word |= c << (((i >> 1u) * 8u) + select(0u, 4u, (i & 1u) == 0u));
        }
        codes_out[b * 8u + j] = word;
    }
}

// One level of the fixed-order absmax tree sum (src/quant/nf4.rs `sum_level`):
// y[g] = the 64 inputs x[64g ..] summed by 8 interleaved accumulators, then pairwise.
@compute @workgroup_size(64)
fn nf4_absmax_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let g = linear_group(wg, nwg) * 64u + lid;
    if (g >= q.count) {
        return;
    }
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    for (var t = 0u; t < 8u; t++) {
        let i = g * 64u + t * 8u;
        let u = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
        let last = arrayLength(&x) - 1u;
        let a = vec4<f32>(x[min(u.x, last)], x[min(u.y, last)], x[min(u.z, last)], x[min(u.w, last)]);
        let c = vec4<f32>(x[min(u.x + 4u, last)], x[min(u.y + 4u, last)], x[min(u.z + 4u, last)],
                          x[min(u.w + 4u, last)]);
        lo += select(vec4<f32>(0.0), a, u < vec4<u32>(q.base));
        hi += select(vec4<f32>(0.0), c, u + 4u < vec4<u32>(q.base));
    }
    y[g] = ((lo.x + lo.y) + (lo.z + lo.w)) + ((hi.x + hi.y) + (hi.z + hi.w));
}

// a / b correctly rounded, as torch's f32 mean divides. WGSL allows f32
// division 2.5 ulp of error and NVIDIA's Vulkan driver uses it (a·rcp(b)); one
// fma step on the exact residual restores the rounded quotient.
fn div_rn(a: f32, b: f32) -> f32 {
    let q = a / b;
    return fma(fma(-q, b, a), 1.0 / b, q);
}

// Double quantization, one invocation per 256 absmax values (bnb's CPU
// blockwise 8-bit quantizer): offset = Σ / count, absmax2 = max |a - offset|,
// code = lut[round((v + 1)/2 · 65535)] of v = (a - offset) / absmax2.
// x: the f32 absmax; bias[0]: the tree sum; lut: 65536 code bytes, 4 per word.
@compute @workgroup_size(64)
fn nf4_absmax_quantize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let j = linear_group(wg, nwg) * 64u + lid;
    if (j >= q.count) {
        return;
    }
    let offset = div_rn(bias[0], f32(q.blocks));
    if (j == 0u) {
        stats_out[NF4_OFFSET] = offset;
    }
    let lo = j * 256u;
    let len = min(256u, q.blocks - lo);
    var am = 0.0;
    for (var i = 0u; i < len; i++) {
        am = max(am, abs(x[lo + i] - offset));
    }
    stats_out[NF4_ABSMAX2 + j] = am;
    let inv = 1.0 / am;
    for (var w = 0u; w < 64u; w++) {
        var word = 0u;
        for (var i = 0u; i < 4u; i++) {
            let t = w * 4u + i;
            var c = 0u;
            if (t < len && am > 0.0) {
                let v = clamp((x[lo + t] - offset) * inv, -1.0, 1.0);
                let s = (v + 1.0) * 0.5;
                // Round the product on its own before adding 0.5 (no FMA), as bnb does.
                let idx = u32(select(s * 65535.0, 0.0, q.zero != 0u) + 0.5);
                c = (lut[idx >> 2u] >> ((idx & 3u) * 8u)) & 0xFFu;
            }
            word |= c << (i * 8u);
        }
        absmax_q_out[j * 64u + w] = word;
    }
}

// W elements [base, base + count) to y[dst_off ..], 32 per invocation
// (base % 32 == 0: one vec4 of code words and one block scale per
// invocation). This is the staged matmul's inner step on CPU adapters, so it
// avoids what llvmpipe pays for per lane: one code load and one absmax per 32
// weights, and in nf4_dequantize_vec4 (whole 32-element groups into a 16-byte
// aligned y, dispatched by the host for all but a tail) 8 vec4 stores instead
// of 32 scalar ones.
@group(0) @binding(16) var<storage, read_write> y4: array<vec4<f32>>;

// Elements base + 32t .. +31 dequantized: [2j] = word j's first 4, [2j+1] its last 4.
fn nf4_dequant32(t: u32) -> array<vec4<f32>, 8> {
    let e0 = q.base + t * 32u;
    let words = codes4[e0 >> 5u];
    let s = nf4_absmax(e0 >> 6u, q.zero);
    let d0 = nf4_word_alu(words.x);
    let d1 = nf4_word_alu(words.y);
    let d2 = nf4_word_alu(words.z);
    let d3 = nf4_word_alu(words.w);
    return array<vec4<f32>, 8>(d0.lo * s, d0.hi * s, d1.lo * s, d1.hi * s,
                               d2.lo * s, d2.hi * s, d3.lo * s, d3.hi * s);
}

@compute @workgroup_size(64)
fn nf4_dequantize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let t = linear_group(wg, nwg) * 64u + lid;
    if (t * 32u >= q.count) {
        return;
    }
    let v = nf4_dequant32(t);
    for (var i = 0u; i < 32u; i++) {
        if (t * 32u + i < q.count) {
            y[q.dst_off + t * 32u + i] = v[i / 4u][i % 4u];
        }
    }
}

// Host guarantees count % 32 == 0 and dst_off % 4 == 0 (y4 starts 16-byte aligned).
@compute @workgroup_size(64)
fn nf4_dequantize_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let t = linear_group(wg, nwg) * 64u + lid;
    if (t * 32u >= q.count) {
        return;
    }
    let v = nf4_dequant32(t);
    let o = (q.dst_off >> 2u) + t * 8u;
    y4[o] = v[0];
    y4[o + 1u] = v[1];
    y4[o + 2u] = v[2];
    y4[o + 3u] = v[3];
    y4[o + 4u] = v[4];
    y4[o + 5u] = v[5];
    y4[o + 6u] = v[6];
    y4[o + 7u] = v[7];
}
