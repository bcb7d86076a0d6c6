// qmatmul_int8: matmuls against a frozen int8 weight (bitsandbytes' vector-wise
// layout: one absmax statistic per output row), plus its GPU quantizer and dequantizer.
//
// Shapes: W [N, K] (nn.Linear layout) as int8 codes, 4 per word in flat
// row-major order (element e in byte e % 4 of word e / 4, little-endian);
// stats [N] = row absmax; x [M, K]; y [M, N]; bias [N]; dy [M, N]; dx [M, K].
// Dequantized weight (bnb's int8_vectorwise_dequant): w = (code · stats[n]) · (1/127) (p.qscale),
// each product rounded to f32.
//   qmatmul_int8_forward   y = x · Wᵀ (+ bias)
//   qmatmul_int8_backward  dx = dy · W (the weight is frozen: no dW)
//   (both take the optional LoRA epilogue, common/lora_epilogue.wgsl: + s·U·Vᵀ)
//   int8_row_absmax        stats[n] = max_k |W[n, k]|
//   int8_quantize          code = round_half_even(W · (127 / stats[n]))
//   int8_dequantize        codes → f32 W (int8_dequantize_vec4: the same, 16 per invocation)
// Forward saves nothing: backward needs only dy and the weight.
//#include common/qgemm
//#include common/grid

@group(0) @binding(0) var<uniform> p: QgemmParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> codes: array<u32>;
@group(0) @binding(6) var<storage, read> stats: array<f32>;


// The four int8 codes of one word, as f32.
fn int8_word(w: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// (code · stats) · (1/127), each product rounded on its own as in bnb. The
// 1/127 (bnb's 7.874015718698502e-3 as f32) comes from the params: with a
// literal, the compiler reassociates to code · (stats · 1/127).
fn int8_scale(c: vec4<f32>, s: f32, inv127: f32) -> vec4<f32> {
    return (c * s) * inv127;
}

fn int8_elem(e: u32, row: u32) -> f32 {
    let c = f32(bitcast<i32>(codes[e >> 2u] << (24u - (e & 3u) * 8u)) >> 24u);
    return int8_scale(vec4<f32>(c), stats[row], p.qscale).x;
}

fn decode8(row: u32, col: u32, col_end: u32) -> Dec8 {
    let e0 = row * p.wk + col;
    let s = stats[row];
    let i = vec4<u32>(col) + vec4<u32>(0u, 1u, 2u, 3u);
    if (p.wk % 4u == 0u) {
        let lo = int8_scale(int8_word(codes[e0 >> 2u]), s, p.qscale);
        let hi = int8_scale(int8_word(codes[(e0 >> 2u) + 1u]), s, p.qscale);
        return Dec8(select(vec4<f32>(0.0), lo, i < vec4<u32>(col_end)),
                    select(vec4<f32>(0.0), hi, i + 4u < vec4<u32>(col_end)));
    }
    var v: array<f32, 8>;
    v[0] = select(0.0, int8_elem(e0, row), col < col_end);
    v[1] = select(0.0, int8_elem(e0 + 1u, row), col + 1u < col_end);
    v[2] = select(0.0, int8_elem(e0 + 2u, row), col + 2u < col_end);
    v[3] = select(0.0, int8_elem(e0 + 3u, row), col + 3u < col_end);
    v[4] = select(0.0, int8_elem(e0 + 4u, row), col + 4u < col_end);
    v[5] = select(0.0, int8_elem(e0 + 5u, row), col + 5u < col_end);
    v[6] = select(0.0, int8_elem(e0 + 6u, row), col + 6u < col_end);
    v[7] = select(0.0, int8_elem(e0 + 7u, row), col + 7u < col_end);
    return Dec8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

@compute @workgroup_size(32)
fn qmatmul_int8_forward(@builtin(workgroup_id) wg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    qgemm_forward(wg, lid);
}

@compute @workgroup_size(8)
fn qmatmul_int8_backward(@builtin(workgroup_id) wg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    qgemm_backward(wg, lid);
}

// ---- quantization and dequantization (QuantParams at binding 0) ----

struct QuantParams {
    count: u32,   // work items of this dispatch
    base: u32,    // global index of the first item
    src_off: u32, // residual element offset of the source binding `x`
    dst_off: u32, // residual element offset of the destination binding `y`
    numel: u32,   // weight elements N·K
    k: u32,       // weight columns K
    inv127: f32,  // 1/127 (see int8_scale)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> q: QuantParams;
@group(0) @binding(12) var<storage, read_write> codes_out: array<u32>;
@group(0) @binding(13) var<storage, read_write> stats_out: array<f32>;

// One invocation per weight row of this chunk (x holds rows base .. base + count).
@compute @workgroup_size(64)
fn int8_row_absmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * 64u + lid;
    if (r >= q.count) {
        return;
    }
    let src = q.src_off + r * q.k;
    var am = vec4<f32>(0.0);
    var k = 0u;
    for (; k + 4u <= q.k; k += 4u) {
        am = max(am, abs(vec4<f32>(x[src + k], x[src + k + 1u], x[src + k + 2u], x[src + k + 3u])));
    }
    var m = max(max(am.x, am.y), max(am.z, am.w));
    for (; k < q.k; k++) {
        m = max(m, abs(x[src + k]));
    }
    stats_out[q.base + r] = m;
}

// One invocation per code word: elements 4t .. 4t+3 of this chunk, whose
// global index starts at base (a multiple of 4). stats must be complete.
@compute @workgroup_size(64)
fn int8_quantize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let t = linear_group(wg, nwg) * 64u + lid;
    if (t * 4u >= q.count) {
        return;
    }
    var word = 0u;
    for (var i = 0u; i < 4u; i++) {
        let e = q.base + t * 4u + i;
        if (t * 4u + i < q.count) {
            // round half to even (torch.round). An all-zero row (absmax 0)
            // gets code 0: tested on the absmax, since WGSL lets compilers
            // assume no NaN (NVIDIA folds `v == v` to true and 0/0 to -127).
            let am = stats_out[e / q.k];
            var c = 0;
            if (am > 0.0) {
                let v = x[q.src_off + t * 4u + i] * (127.0 / am);
                c = i32(clamp(round(v), -127.0, 127.0));
            }
            word |= (bitcast<u32>(c) & 0xFFu) << (i * 8u);
        }
    }
    codes_out[(q.base >> 2u) + t] = word;
}

// W elements [base, base + count) to y[dst_off ..], 4 per invocation (base % 4 == 0).
@compute @workgroup_size(64)
fn int8_dequantize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let t = linear_group(wg, nwg) * 64u + lid;
    if (t * 4u >= q.count) {
        return;
    }
    let e0 = q.base + t * 4u;
    let c = int8_word(codes[e0 >> 2u]);
    for (var i = 0u; i < 4u; i++) {
        if (t * 4u + i < q.count) {
            let e = e0 + i;
            y[q.dst_off + t * 4u + i] = int8_scale(vec4<f32>(c[i]), stats[e / q.k], q.inv127).x;
        }
    }
}

// The staged matmul's inner step on CPU adapters (see qmatmul_nf4's
// nf4_dequantize_vec4): 16 elements per invocation, whose scales are the two
// row stats they can span, selected per element, and 4 vec4 stores.
// Host guarantees base % 16 == 0, count % 16 == 0, dst_off % 4 == 0 and
// k >= 16.
@group(0) @binding(16) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn int8_dequantize_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let t = linear_group(wg, nwg) * 64u + lid;
    if (t * 16u >= q.count) {
        return;
    }
    let e0 = q.base + t * 16u;
    let r0 = e0 / q.k;
    let next = vec4<u32>((r0 + 1u) * q.k); // first element of row r0 + 1
    let s0 = vec4<f32>(stats[r0]);
    let s1 = vec4<f32>(stats[min(r0 + 1u, arrayLength(&stats) - 1u)]);
    let o = (q.dst_off >> 2u) + t * 4u;
    for (var j = 0u; j < 4u; j++) {
        let e = vec4<u32>(e0 + 4u * j) + vec4<u32>(0u, 1u, 2u, 3u);
        let s = select(s0, s1, e >= next);
        y4[o + j] = (int8_word(codes[(e0 >> 2u) + j]) * s) * q.inv127;
    }
}
