// Causal self-attention, CPU-adapter variant with subgroups: the dK/dV pass
// (the forward and dQ passes are in attention_cpu_subgroup.wgsl; read
// attention_cpu.wgsl's header for the math, shapes and bindings).
//
// One invocation per cache row (b, j, g) of KV head g, CW rows per
// workgroup, as in attention_cpu's dK/dV; the workgroup is one subgroup and
// walks the union of its rows' query ranges KB queries at a time. Each Q and
// dO row (and each query's saved stats) is loaded once per workgroup, lane l
// loading its chunks (common/attention_cpu_lanes), and handed to every lane
// by subgroupBroadcast: attention_cpu's lanes each load every vec4 of every
// query row themselves, twice, which on llvmpipe (loads run lane by lane)
// cost 8-16x the loads per multiply-add of the forward.
//#include common/attention_cpu_lanes

// This lane's chunks of the Q (dO) row at vec4 `o` (see S).
fn q_share(o: u32, lid: u32) -> array<vec4<f32>, 4> {
    var x: array<vec4<f32>, 4>;
    for (var s = 0u; s < S; s++) {
        x[s] = q[o + min(8u * s + lid, D4 - 1u)];
    }
    return x;
}

fn dout_share(o: u32, lid: u32) -> array<vec4<f32>, 4> {
    var x: array<vec4<f32>, 4>;
    for (var s = 0u; s < S; s++) {
        x[s] = dout[o + min(8u * s + lid, D4 - 1u)];
    }
    return x;
}

// dV_j = sum_h sum_i P_ij dO_i, dK_j = scale * sum_h sum_i P_ij (dO_i.V_j - D_i) Q_i
// over the query heads h of g's group, queries KB at a time. Rows past tk and
// padded keys get zeros (their K/V rows are zeroed: cache slots past tk may
// hold anything, and a zero row adds nothing to a broadcast dot).
@compute @workgroup_size(8)
fn attention_backward_dkv(@builtin(workgroup_id) wg: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let rr = row_block(linear_group(wg, nwg), lid, p.kv_stride, CW, p.kv_heads);
    if (past_end(rr, p.kv_heads)) {
        return;
    }
    let b = rr.b;
    let j = min(rr.row, p.kv_stride - 1u);
    let ko = kv_base(b, j, rr.h);
    // Slots past D/4 stay zero (bdot relies on it).
    var kr: array<vec4<f32>, DMAX4>;
    var vr: array<vec4<f32>, DMAX4>;
    var gk: array<vec4<f32>, DMAX4>;
    var gv: array<vec4<f32>, DMAX4>;
    let live = j < p.tk && key_real(b, j);
    for (var d = 0u; d < D4; d++) {
        kr[d] = select(vec4<f32>(0.0), k[ko + d] * p.scale_log2, live);
        vr[d] = select(vec4<f32>(0.0), v[ko + d], live);
    }
    let start = select(p.tq, query_start(j), live);
    // Keys of this block at or past tk see no query at all.
    let wg_start = select(p.tq, query_start(rr.first), rr.first < p.tk);
    let group = p.heads / p.kv_heads;
    let last = p.tq - 1u;
    for (var h = rr.h * group; h < (rr.h + 1u) * group; h++) {
        let bh = b * p.heads + h;
        for (var i = wg_start; i < p.tq; i += KB) {
            let o = vec4<u32>(q_base(b, i, h), q_base(b, min(i + 1u, last), h),
                              q_base(b, min(i + 2u, last), h), q_base(b, min(i + 3u, last), h));
            let q0 = q_share(o.x, lid);
            let q1 = q_share(o.y, lid);
            let q2 = q_share(o.z, lid);
            let q3 = q_share(o.w, lid);
            let t = vec4<f32>(bdot_row(&kr, q0), bdot_row(&kr, q1), bdot_row(&kr, q2),
                              bdot_row(&kr, q3));
            let d0 = dout_share(o.x, lid);
            let d1 = dout_share(o.y, lid);
            let d2 = dout_share(o.z, lid);
            let d3 = dout_share(o.w, lid);
            let du = vec4<f32>(bdot_row(&vr, d0), bdot_row(&vr, d1), bdot_row(&vr, d2),
                               bdot_row(&vr, d3));
            // Stats of queries i .. i+3, loaded once: lane r & 3 reads i + r & 3.
            let mine = stats[bh * p.tq + min(i + (lid & 3u), last)];
            let s0 = subgroupBroadcast(mine, 0u);
            let s1 = subgroupBroadcast(mine, 1u);
            let s2 = subgroupBroadcast(mine, 2u);
            let s3 = subgroupBroadcast(mine, 3u);
            let ii = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
            let seen = (ii >= vec4<u32>(start)) & (ii < vec4<u32>(p.tq));
            let pij = select(vec4<f32>(0.0), exp2(t - vec4<f32>(s0.x, s1.x, s2.x, s3.x)), seen);
            let ds = pij * (du - vec4<f32>(s0.y, s1.y, s2.y, s3.y));
            bacc_rows(&gv, 1.0, pij, d0, d1, d2, d3);
            bacc_rows(&gk, 1.0, ds, q0, q1, q2, q3);
        }
    }
    if (rr.row < p.kv_stride) {
        for (var d = 0u; d < D4; d++) {
            dk[ko + d] = gk[d] * p.scale;
            dv[ko + d] = gv[d];
        }
    }
}
