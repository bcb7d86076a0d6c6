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
// Each invocation: one Block, rows m0 .. m0+15, columns n0 .. n0+7.
@compute @workgroup_size(8)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = (wg.x * LANES + lid) * TN;
    let m0 = wg.y * TM;
    if (n0 >= p.n || m0 >= p.m || wg.z >= p.batch) {
        return;
    }
    let ab = a_batch(wg.z);
    let bb = b_batch(wg.z);
    var blk: Block;
    var k = 0u;
    for (; k + 4u <= p.k; k += 4u) {
        block_fma(&blk, a_panel(ab, m0, k), a_panel(ab, m0 + 4u, k), a_panel(ab, m0 + 8u, k),
                  a_panel(ab, m0 + 12u, k), b_panel(bb, k, n0), b_panel(bb, k, n0 + 4u));
    }
    block_finish(&blk, ab, bb, c_batch(wg.z), m0, n0, k);
}
