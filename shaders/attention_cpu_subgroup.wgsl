// Causal self-attention, CPU-adapter variant with subgroups (llvmpipe /
// lavapipe over Vulkan): the forward and dQ passes (dK/dV is in
// attention_cpu_subgroup_bwd.wgsl). Same math, shapes, bindings, rows per
// workgroup and KB-key blocks as attention_cpu.wgsl (read its header first).
//
// Why: on llvmpipe every storage load is a loop over the SIMD lanes, one
// lane at a time, even when all lanes read the same address. attention_cpu
// has each of its 8 lanes load all D/4 vec4s of every K and V row it walks,
// the same row for every lane. Here the workgroup is one subgroup: lane l
// loads only the vec4s d = l, l + 8, .. of the row and subgroupBroadcast (a
// register extract on llvmpipe) hands chunk d to every lane: 8x fewer loads
// per row. Needs one workgroup = lanes of one subgroup (8 invocations,
// subgroup size >= 8); no invocation returns before the loops (lanes past
// the end work on a clamped row and store nothing).
//#include common/attention_cpu_lanes

// This lane's chunks of the K (V) row at vec4 `o` (see S).
fn k_share(o: u32, lid: u32) -> array<vec4<f32>, 4> {
    var x: array<vec4<f32>, 4>;
    for (var s = 0u; s < S; s++) {
        x[s] = k[o + min(8u * s + lid, D4 - 1u)];
    }
    return x;
}

fn v_share(o: u32, lid: u32) -> array<vec4<f32>, 4> {
    var x: array<vec4<f32>, 4>;
    for (var s = 0u; s < S; s++) {
        x[s] = v[o + min(8u * s + lid, D4 - 1u)];
    }
    return x;
}

// Which of keys j .. j+3 a row whose window ends at `end` gives weight (see
// key_block_ok); the mask is loaded once, lane r & 3 reading key j + r & 3.
fn key_block_ok_shared(b: u32, j: u32, end: u32, lid: u32) -> vec4<bool> {
    var real = vec4<bool>(true);
    if ((p.flags & 2u) != 0u) {
        let mine = kmask[b * p.mask_stride + min(j + (lid & 3u), p.tk - 1u)];
        real = vec4<i32>(subgroupBroadcast(mine, 0u), subgroupBroadcast(mine, 1u),
                         subgroupBroadcast(mine, 2u), subgroupBroadcast(mine, 3u)) != vec4<i32>(0);
    }
    return real & (vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end));
}

@compute @workgroup_size(8)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let rr = row_block(linear_group(wg, nwg), lid, p.tq, CW, p.heads);
    if (past_end(rr, p.heads)) {
        return;
    }
    let g = kv_head(rr.h);
    let i = min(rr.row, p.tq - 1u);
    let qo = q_base(rr.b, i, rr.h);
    var qr: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
        qr[d] = q[qo + d] * p.scale_log2;
    }
    var m = NEG;
    var l = 0.0;
    let end = key_end(i);
    let wg_end = key_end(min(rr.first + CW, p.tq) - 1u);
    for (var j = 0u; j < wg_end; j += KB) {
        let o = kv_block(rr.b, j, wg_end - 1u, g);
        let k0 = k_share(o.x, lid);
        let k1 = k_share(o.y, lid);
        let k2 = k_share(o.z, lid);
        let k3 = k_share(o.w, lid);
        let t = vec4<f32>(bdot_row(&qr, k0), bdot_row(&qr, k1), bdot_row(&qr, k2),
                          bdot_row(&qr, k3));
        let ok = key_block_ok_shared(rr.b, j, end, lid);
        let sc = select(vec4<f32>(NEG), t, ok);
        let mb = max(m, max(max(sc.x, sc.y), max(sc.z, sc.w)));
        let corr = exp2(m - mb);
        let w = select(vec4<f32>(0.0), exp2(sc - mb), ok);
        l = l * corr + hsum(w);
        m = mb;
        let v0 = v_share(o.x, lid);
        let v1 = v_share(o.y, lid);
        let v2 = v_share(o.z, lid);
        let v3 = v_share(o.w, lid);
        bacc_rows(&acc, corr, w, v0, v1, v2, v3);
    }
    if (rr.row < p.tq) {
        // A row that sees no real key (a left-pad query) outputs exact zeros.
        let inv = select(0.0, 1.0 / l, l > 0.0);
        for (var d = 0u; d < D4; d++) {
            out[qo + d] = acc[d] * inv;
        }
        lse[rr.bh * p.tq + i] = select(0.0, (m + log2(l)) * LN2, l > 0.0);
    }
}

// dQ_i = scale * sum_j P_ij (dO_i.V_j - D_i) K_j, keys KB at a time.
@compute @workgroup_size(8)
fn attention_backward_dq(@builtin(workgroup_id) wg: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let rr = row_block(linear_group(wg, nwg), lid, p.tq, CW, p.heads);
    if (past_end(rr, p.heads)) {
        return;
    }
    let g = kv_head(rr.h);
    let i = min(rr.row, p.tq - 1u);
    let qo = q_base(rr.b, i, rr.h);
    var qr: array<vec4<f32>, DMAX4>;
    var dor: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
        qr[d] = q[qo + d] * p.scale_log2;
        dor[d] = dout[qo + d];
    }
    let st = stats[rr.bh * p.tq + i];
    let end = key_end(i);
    let wg_end = key_end(min(rr.first + CW, p.tq) - 1u);
    for (var j = 0u; j < wg_end; j += KB) {
        let o = kv_block(rr.b, j, wg_end - 1u, g);
        let k0 = k_share(o.x, lid);
        let k1 = k_share(o.y, lid);
        let k2 = k_share(o.z, lid);
        let k3 = k_share(o.w, lid);
        let t = vec4<f32>(bdot_row(&qr, k0), bdot_row(&qr, k1), bdot_row(&qr, k2),
                          bdot_row(&qr, k3));
        // V's shares are loaded after K's dots (see common/attention_cpu_lanes).
        let v0 = v_share(o.x, lid);
        let v1 = v_share(o.y, lid);
        let v2 = v_share(o.z, lid);
        let v3 = v_share(o.w, lid);
        let du = vec4<f32>(bdot_row(&dor, v0), bdot_row(&dor, v1), bdot_row(&dor, v2),
                           bdot_row(&dor, v3));
        // dS_ij with P_ij = exp2(s - lse2); 0 where row i may not see j.
        let ok = key_block_ok_shared(rr.b, j, end, lid);
        let ds = select(vec4<f32>(0.0), exp2(t - st.x) * (du - st.y), ok);
        bacc_rows(&acc, 1.0, ds, k0, k1, k2, k3);
    }
    if (rr.row < p.tq) {
        for (var d = 0u; d < D4; d++) {
            dq[qo + d] = acc[d] * p.scale;
        }
    }
}
