// matmul, CPU-adapter variant (llvmpipe / lavapipe / WARP):
//   C[z] = accumulate·C[z] + op(A[z]) · op(B[z]) (+ bias), op = optional transpose.
// Shapes (elements, all f32, row-major): op(A) is [M, K], op(B) is [K, N], C is
// [M, N]; A is stored [M, K] (or [K, M] with TRANS_A), B is stored [K, N] (or
// [N, K] with TRANS_B). z is the batch (workgroup_id.z); each operand has its own
// batch stride (0 = shared weight). Offsets are residual element offsets inside
// the bound ranges, so the host can chunk operands larger than one binding.
// Forward saves nothing itself; the backward (src/ops/matmul.rs) reuses this
// entry with other transpose flags.
//
// Why this shape: on a CPU adapter one workgroup is one task running 8 SIMD
// lanes, barriers are coroutine switches, and every storage load whose address
// differs across lanes becomes a loop over the lanes -- costing about the same
// for one scalar as for a vec4. So: no shared memory, and each invocation
// keeps a TM×TN block of C in registers and, per 4 steps of k, loads a 4×TM
// panel of A and a 4×TN panel of B as vec4s along whichever storage axis is
// contiguous, for 4·TM·TN FMAs. When an operand's layout is not 16-byte
// aligned (VEC_A / VEC_B false, chosen on the host) the same panel is
// gathered with scalar loads. A K % 4 tail runs scalar. Rows and columns past
// the edge read clamped (valid, unused) addresses and are never stored.
//
// LoRA: with the `LORA` override (common/lora_epilogue.wgsl) the low-rank term
// scale·U·Vᵀ is accumulated into the same registers, 4 ranks at a time, after
// the K loop and before the one store (src/ops/lora.rs).
//#include common/matmul_cpu_blocks
// Each invocation: rows m0 .. m0+15, columns n0 .. n0+7 as eight 4×4 blocks
// (16×8 measured ~30% faster than 8×8 at 1024³ on llvmpipe).
// c_hg = Σ_k b_panel(k, n0 + 4h) · a_panel(m0 + 4g, k), so c_hg[r][q] is
// C[m0 + 4g + r, n0 + 4h + q]: plain vec4 FMAs, no arrays (which llvmpipe
// would index lane by lane).
@compute @workgroup_size(8)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = (wg.x * LANES + lid) * TN;
    let m0 = wg.y * TM;
    if (n0 >= p.n || m0 >= p.m || wg.z >= p.batch) {
        return;
    }
    let ab = p.a_off + wg.z * p.a_bs;
    let bb = p.b_off + wg.z * p.b_bs;
    var c00 = mat4x4<f32>();
    var c01 = mat4x4<f32>();
    var c02 = mat4x4<f32>();
    var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>();
    var c11 = mat4x4<f32>();
    var c12 = mat4x4<f32>();
    var c13 = mat4x4<f32>();
    var k = 0u;
    for (; k + 4u <= p.k; k += 4u) {
        let a0 = a_panel(ab, m0, k);
        let a1 = a_panel(ab, m0 + 4u, k);
        let a2 = a_panel(ab, m0 + 8u, k);
        let a3 = a_panel(ab, m0 + 12u, k);
        let b0 = b_panel(bb, k, n0);
        let b1 = b_panel(bb, k, n0 + 4u);
        c00 += b0 * a0;
        c01 += b0 * a1;
        c02 += b0 * a2;
        c03 += b0 * a3;
        c10 += b1 * a0;
        c11 += b1 * a1;
        c12 += b1 * a2;
        c13 += b1 * a3;
    }
    if (k < p.k) {
        let r = p.k - k;
        let a0 = a_tail(ab, m0, k, r);
        let a1 = a_tail(ab, m0 + 4u, k, r);
        let a2 = a_tail(ab, m0 + 8u, k, r);
        let a3 = a_tail(ab, m0 + 12u, k, r);
        let b0 = b_tail(bb, k, n0, r);
        let b1 = b_tail(bb, k, n0 + 4u, r);
        c00 += b0 * a0;
        c01 += b0 * a1;
        c02 += b0 * a2;
        c03 += b0 * a3;
        c10 += b1 * a0;
        c11 += b1 * a1;
        c12 += b1 * a2;
        c13 += b1 * a3;
    }
    if (LORA) {
        let e = p.lora;
        for (var j = 0u; j < e.rank; j += 4u) {
            let u0 = lora_u_panel(e, m0, j);
            let u1 = lora_u_panel(e, m0 + 4u, j);
            let u2 = lora_u_panel(e, m0 + 8u, j);
            let u3 = lora_u_panel(e, m0 + 12u, j);
            let v0 = lora_v_panel(e, j, n0);
            let v1 = lora_v_panel(e, j, n0 + 4u);
            c00 += v0 * u0;
            c01 += v0 * u1;
            c02 += v0 * u2;
            c03 += v0 * u3;
            c10 += v1 * u0;
            c11 += v1 * u1;
            c12 += v1 * u2;
            c13 += v1 * u3;
        }
    }
    let row0 = p.c_off + wg.z * p.c_bs;
    store_block(row0, m0, n0, c00);
    store_block(row0, m0 + 4u, n0, c01);
    store_block(row0, m0 + 8u, n0, c02);
    store_block(row0, m0 + 12u, n0, c03);
    store_block(row0, m0, n0 + 4u, c10);
    store_block(row0, m0 + 4u, n0 + 4u, c11);
    store_block(row0, m0 + 8u, n0 + 4u, c12);
    store_block(row0, m0 + 12u, n0 + 4u, c13);
}
