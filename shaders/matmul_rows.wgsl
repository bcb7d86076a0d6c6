// matmul, few-rows variant for real GPUs (decoding: M = the batch of
// sequences generating one token each):
//   C[z] = accumulate·C[z] + op(A[z]) · op(B[z]) (+ bias), op = optional transpose,
// with the shapes, strides, offsets and params of matmul.wgsl.
//
// Why: with M ≤ 8 the tiled kernel's 64×64 tiles leave 63/64 of each tile
// empty and walk K in one chain per workgroup, so a 768 → 3072 GEMV took
// 0.7 ms on an H200 where reading the weight takes microseconds. Here a
// workgroup owns RM = 4 rows × CN = 32 columns, and its 256 lanes split the
// reduction too: KS = 8 slices, each taking 4 consecutive k of every 32. The
// lanes map so that consecutive ones walk B's contiguous storage axis: along
// n (B [K, N]: lane = column, 32 columns in a row) or along k (TRANS_B, B
// [N, K]: 8 slices × 4 k = 32 consecutive words of one column).
//
// Each lane keeps the 4 rows' partial sums as one vec4 (fma per k, k
// ascending within the slice); the 8 slice sums of an output element are
// added in slice order after a barrier, then the epilogue adds the LoRA term
// (4 ranks at a time), the bias and the old C (accumulate), in matmul.wgsl's
// order. Rows and k past the edges contribute zeros (clamped loads, masked).
// Forward saves nothing; the host picks this kernel for M ≤ 8 on non-CPU
// adapters (MatmulVariant::Rows, src/ops/matmul.rs).
//#include common/matmul_params

const RM: u32 = 4u;
const CN: u32 = 32u;
const KS: u32 = 8u;

// Partial sums: [KS][CN] vec4s (the RM rows of one column).
var<workgroup> part: array<vec4<f32>, 256>;

// op(A)[m, k], or 0 past the edges (the address is clamped into the range).
fn a_at(base: u32, m: u32, k: u32) -> f32 {
    let i = base + select(m * p.lda + k, k * p.lda + m, TRANS_A);
    let v = a[min(i, arrayLength(&a) - 1u)];
    return select(0.0, v, m < p.m && k < p.k);
}

// op(B)[k, n], or 0 past the edges.
fn b_at(base: u32, k: u32, n: u32) -> f32 {
    let i = base + select(k * p.ldb + n, n * p.ldb + k, TRANS_B);
    let v = b[min(i, arrayLength(&b) - 1u)];
    return select(0.0, v, n < p.n && k < p.k);
}

@compute @workgroup_size(256)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup, so returning here keeps barriers uniform.
    if (wg.z >= p.batch) {
        return;
    }
    let m0 = wg.y * RM;
    let n0 = wg.x * CN;
    let a_base = a_batch(wg.z);
    let b_base = b_batch(wg.z);
    let col = select(li % CN, li / KS, TRANS_B);
    let slice = select(li / CN, li % KS, TRANS_B);
    let n = n0 + col;
    var acc = vec4<f32>(0.0);
    for (var k0 = slice * 4u; k0 < p.k; k0 += KS * 4u) {
        for (var i = 0u; i < 4u; i++) {
            let k = k0 + i;
            let ar = vec4<f32>(a_at(a_base, m0, k), a_at(a_base, m0 + 1u, k), a_at(a_base, m0 + 2u, k),
                               a_at(a_base, m0 + 3u, k));
            acc = fma(ar, vec4<f32>(b_at(b_base, k, n)), acc);
        }
    }
    part[slice * CN + col] = acc;
    workgroupBarrier();
    // 128 outputs (RM rows × CN columns); consecutive lanes take consecutive columns.
    if (li >= RM * CN) {
        return;
    }
    let oc = li % CN;
    let r = li / CN;
    let m = m0 + r;
    let on = n0 + oc;
    var v = 0.0;
    for (var s = 0u; s < KS; s++) {
        v += part[s * CN + oc][r];
    }
    if (m >= p.m || on >= p.n) {
        return;
    }
    if (LORA) {
        for (var j = 0u; j < p.lora.rank; j += 4u) {
            v += dot(lora_u4(p.lora, m, j) * p.lora.scale, lora_v4(p.lora, on, j));
        }
    }
    let o = c_batch(wg.z) + m * p.ldc + on;
    if (p.has_bias != 0u) {
        v += bias[p.bias_off + on];
    }
    if (p.accumulate != 0u) {
        v += c[o];
    }
    c[o] = v;
}
