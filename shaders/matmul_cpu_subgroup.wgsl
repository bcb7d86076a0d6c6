// matmul, CPU-adapter variant with subgroups (llvmpipe / lavapipe over Vulkan):
//   C[z] = accumulate·C[z] + op(A[z]) · op(B[z]) (+ bias), op = optional transpose.
// Same shapes, params, bindings, constants and 16×8 register blocks per
// invocation as matmul_cpu.wgsl (read its header first).
//
// Why: on llvmpipe every storage load is a loop over the SIMD lanes, one per
// component, even when all lanes read the same address -- and A's panels are
// the same for all 8 invocations (they differ only in columns). matmul_cpu
// loads them 8 times over: 64 of the 96 elements each lane loads per 4 steps
// of k. Here lane l loads 2 of the 16 vec4s of A that the workgroup needs
// and subgroupBroadcast (a register extract on llvmpipe) hands them to every
// lane: 8 + 32 elements per lane per 4 steps of k for the same 512 FMAs.
// Needs one workgroup = lanes of one subgroup (8 invocations, subgroup size
// >= 8), so no invocation returns before the K loop: lanes past N compute on
// clamped addresses and store nothing.
//#include common/matmul_cpu_blocks
// This lane's share of A's 16×4 block at rows m0.., k..: two vec4s, laid
// out so that a_shared can rebuild every panel with constant lane ids.
// Without TRANS_A: x0 = A[m0 + l, k..k+3], x1 = A[m0 + 8 + l, k..k+3].
// With TRANS_A (A stored [K, M]): with kk = l % 4 and g = l / 4,
// x0 = A[m0 + 4g .. +3, k + kk], x1 = A[m0 + 4(g + 2) .. +3, k + kk].
fn a_share(base: u32, m0: u32, k: u32, l: u32) -> array<vec4<f32>, 2> {
    if (TRANS_A) {
        let e = base + (k + (l & 3u)) * p.lda + m0 + 4u * (l >> 2u);
        return array<vec4<f32>, 2>(load_a(e), load_a(e + 8u));
    }
    let e = base + (m0 + l) * p.lda + k;
    return array<vec4<f32>, 2>(load_a(e), load_a(e + 8u * p.lda));
}

// Panel g of a_share's block: result[r][kk] = op(A)[m0 + 4g + r, k + kk].
fn a_shared(x0: vec4<f32>, x1: vec4<f32>, g: u32) -> mat4x4<f32> {
    if (TRANS_A) {
        // Lane kk + 4(g % 2) holds column kk in slot g / 2.
        var x = x0;
        if (g >= 2u) {
            x = x1;
        }
        var t: mat4x4<f32>;
        if ((g & 1u) == 0u) {
            t = mat4x4<f32>(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u),
                            subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u));
        } else {
            t = mat4x4<f32>(subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u),
                            subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u));
        }
        return transpose(t);
    }
    // Row r = 4g + i is lane r % 8, slot r / 8.
    var x = x0;
    if (g >= 2u) {
        x = x1;
    }
    if ((g & 1u) == 0u) {
        return mat4x4<f32>(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u),
                           subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u));
    }
    return mat4x4<f32>(subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u),
                       subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u));
}

// Each invocation: rows m0 .. m0+15, columns n0 .. n0+7 as eight 4×4 blocks
// c_hg = Σ_k b_panel(k, n0 + 4h) · a_shared(.., g), so c_hg[r][q] is
// C[m0 + 4g + r, n0 + 4h + q]: plain vec4 FMAs, no arrays (which llvmpipe
// would index lane by lane).
@compute @workgroup_size(8)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = (wg.x * LANES + lid) * TN;
    let m0 = wg.y * TM;
    // Uniform over the workgroup (see the header).
    if (m0 >= p.m || wg.z >= p.batch) {
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
        let x = a_share(ab, m0, k, lid);
        let a0 = a_shared(x[0], x[1], 0u);
        let a1 = a_shared(x[0], x[1], 1u);
        let a2 = a_shared(x[0], x[1], 2u);
        let a3 = a_shared(x[0], x[1], 3u);
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
