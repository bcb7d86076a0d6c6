// matmul, CPU-adapter variant with subgroups (llvmpipe / lavapipe over Vulkan):
//   C[z] = accumulate·C[z] + op(A[z]) · op(B[z]) (+ bias), op = optional transpose.
// Same shapes, params, bindings, constants and 16×8 register Blocks as
// matmul_cpu.wgsl (read its header first), two Blocks per invocation.
//
// Why: on llvmpipe every storage load is a loop over the SIMD lanes, one
// lane at a time, even when all lanes read the same address -- and A's
// panels are the same for all 8 invocations (they differ only in columns).
// matmul_cpu loads them 8 times over. Here lane l loads 4 of the 32 vec4s of
// A that the workgroup needs per 4 steps of k and subgroupBroadcast (a
// register extract on llvmpipe) hands them to every lane, and each lane
// keeps 32 rows × 8 columns of C (two Blocks): 4 + 8 vec4 loads per lane per
// 4 steps of k for 1024 FMAs (16 rows: 2 + 8 loads for 512). Uniform loads
// (every lane reading A's panel itself) measured ~35% slower than the
// broadcasts; 64 rows per invocation was slower again (spills).
// Products at most 16 rows tall, or 33 to 48, take the one-Block form
// (BLOCKS below).
// Needs one workgroup = lanes of one subgroup (8 invocations, subgroup size
// >= 8), so no invocation returns before the K loop: lanes past N compute on
// clamped addresses and store nothing.
//#include common/matmul_cpu_blocks

// Blocks per invocation: 2 (32 rows per workgroup), or 1 (16 rows) for
// products at most 16 rows tall -- a LoRA rank, or a narrow product the host
// transposed -- where the second would be all clamped rows, and for 33 to 48
// rows (decoding), where two would compute 64. A constant, not
// a param: llvmpipe runs a uniform branch under a mask, at full cost.
// matmul/gemm.rs dispatches TM · BLOCKS rows per workgroup.
override BLOCKS: u32 = 2u;

// This lane's share of A's 32×4 block at rows m0.., k..: four vec4s, laid
// out so that a_shared can rebuild every panel with constant lane ids.
// Without TRANS_A: x[s] = A[m0 + 8s + l, k..k+3].
// With TRANS_A (A stored [K, M]): with kk = l % 4 and g = l / 4,
// x[s] = A[m0 + 4(g + 2s) .. +3, k + kk].
fn a_share(base: u32, m0: u32, k: u32, l: u32) -> array<vec4<f32>, 4> {
    if (TRANS_A) {
        let e = base + (k + (l & 3u)) * p.lda + m0 + 4u * (l >> 2u);
        return array<vec4<f32>, 4>(load_a(e), load_a(e + 8u), load_a(e + 16u), load_a(e + 24u));
    }
    let e = base + (m0 + l) * p.lda + k;
    return array<vec4<f32>, 4>(load_a(e), load_a(e + 8u * p.lda), load_a(e + 16u * p.lda),
                               load_a(e + 24u * p.lda));
}

// Panel g (rows m0 + 4g ..) of a_share's block: result[r][kk] = op(A)[m0 + 4g + r, k + kk].
// Both layouts put it in slot g / 2 of lanes 4(g % 2) .. 4(g % 2) + 3 (as
// rows, or as the columns kk when TRANS_A); `odd` is g % 2.
fn a_shared(x: vec4<f32>, odd: bool) -> mat4x4<f32> {
    var t: mat4x4<f32>;
    if (odd) {
        t = mat4x4<f32>(subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u),
                        subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u));
    } else {
        t = mat4x4<f32>(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u),
                        subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u));
    }
    if (TRANS_A) {
        return transpose(t);
    }
    return t;
}

// Each invocation: Blocks `top` (rows m0 .. m0+15) and `bottom` (m0+16 ..
// m0+31), columns n0 .. n0+7.
@compute @workgroup_size(8)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = (wg.x * LANES + lid) * TN;
    let m0 = wg.y * TM * BLOCKS;
    // Uniform over the workgroup (see the header).
    if (m0 >= p.m || wg.z >= p.batch) {
        return;
    }
    let ab = a_batch(wg.z);
    let bb = b_batch(wg.z);
    var top: Block;
    var bottom: Block;
    var k = 0u;
    for (; k + 4u <= p.k; k += 4u) {
        let x = a_share(ab, m0, k, lid);
        let b0 = b_panel(bb, k, n0);
        let b1 = b_panel(bb, k, n0 + 4u);
        block_fma(&top, a_shared(x[0], false), a_shared(x[0], true), a_shared(x[1], false),
                  a_shared(x[1], true), b0, b1);
        if (BLOCKS == 2u) {
            block_fma(&bottom, a_shared(x[2], false), a_shared(x[2], true), a_shared(x[3], false),
                      a_shared(x[3], true), b0, b1);
        }
    }
    let row0 = c_batch(wg.z);
    block_finish(&top, ab, bb, row0, m0, n0, k);
    if (BLOCKS == 2u) {
        block_finish(&bottom, ab, bb, row0, m0 + 16u, n0, k);
    }
}
