// Causal self-attention, CPU-adapter variant (llvmpipe, lavapipe, WARP).
//
// Shapes: q, out [B, Tq, H, D]; k, v [B, Tcap, Hkv, D] (first Tk rows valid;
// query head h reads KV head h / (H / Hkv), see common/attention_params);
// optional key mask [B, mask_stride] i32; lse [B, H, Tq]. D % 4 == 0, D <= 128.
// Forward saves (q, k, v, out, lse); backward recomputes the probabilities.
//
// One invocation per row (query row, or key row for dK/dV) holds the row and
// its accumulators in private arrays and walks the other operand with an
// online softmax: no shared memory and no barriers, which llvmpipe makes
// expensive. A workgroup is CW consecutive rows of one (b, h) and walks the
// union of their key ranges, so the loop index and every row address it
// loads are workgroup-uniform (llvmpipe still loads them lane by lane; the
// subgroup variant, attention_cpu_subgroup.wgsl, shares them instead). Lanes
// mask out what their own row may not see (with zero weights, so rows below
// tk of k/v must be finite, padded or not). The loops take KB keys (queries)
// per step as unrolled registers, not a score array (which llvmpipe indexes
// lane by lane).
//#include common/attention_cpu_rows

// Keys go 4 at a time (KB): 4 scores, one running-max update and one rescale
// of the accumulators per block, then acc = acc·corr + Σ w·v in one sweep.
// Per key this loads the row arrays (spilled to the stack at D = 64) a
// quarter as often, and has no data-dependent branch: llvmpipe runs both
// sides of one under a mask, so the old per-key `if (sc > m)` rescale cost
// a masked sweep over acc for every key. Keys a lane may not see, padded
// keys and keys past the block's end get weight exactly 0 (their rows are
// read at clamped, valid addresses).
@compute @workgroup_size(8)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let rr = row_block(linear_group(wg, nwg), lid, p.tq, CW, p.heads);
    if (past_end(rr, p.heads)) {
        return;
    }
    let wg_end = key_end(min(rr.first + CW, p.tq) - 1u);
    forward_row(rr.bh, min(rr.row, p.tq - 1u), wg_end, rr.row < p.tq);
}

// One query row per lane, the lanes of a workgroup on consecutive (b, h)
// rows: the host's choice when Tq = 1 (decoding with a cache), where the
// entry above would give each workgroup one real row and seven lanes
// repeating it. Each lane walks its own row's keys, which is the same walk,
// block for block, that the entry above makes for a workgroup of one row.
@compute @workgroup_size(8)
fn attention_forward_rows(@builtin(workgroup_id) wg: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * CW + lid;
    if (r >= p.batch * p.heads * p.tq) {
        return;
    }
    let i = r % p.tq;
    forward_row(r / p.tq, i, key_end(i), true);
}

// Row i of (b, h) = bh, walking keys 0 .. wg_end (the workgroup's union of
// key ranges); `real` rows store their output and lse.
fn forward_row(bh: u32, i: u32, wg_end: u32, real: bool) {
    let b = bh / p.heads;
    let h = bh % p.heads;
    let g = kv_head(h);
    let qo = q_base(b, i, h);
    var qr: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
        qr[d] = q[qo + d] * p.scale_log2;
        acc[d] = vec4<f32>(0.0);
    }
    var m = NEG;
    var l = 0.0;
    let end = key_end(i);
    for (var j = 0u; j < wg_end; j += KB) {
        let o = kv_block(b, j, wg_end - 1u, g);
        let o0 = o.x;
        let o1 = o.y;
        let o2 = o.z;
        let o3 = o.w;
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        var t2 = vec4<f32>(0.0);
        var t3 = vec4<f32>(0.0);
        for (var d = 0u; d < D4; d++) {
            let x = qr[d];
            t0 += x * k[o0 + d];
            t1 += x * k[o1 + d];
            t2 += x * k[o2 + d];
            t3 += x * k[o3 + d];
        }
        let ok = key_block_ok(b, j, end);
        let s = select(vec4<f32>(NEG), vec4<f32>(hsum(t0), hsum(t1), hsum(t2), hsum(t3)), ok);
        let mb = max(m, max(max(s.x, s.y), max(s.z, s.w)));
        let corr = exp2(m - mb);
        let w = select(vec4<f32>(0.0), exp2(s - mb), ok);
        l = l * corr + hsum(w);
        m = mb;
        for (var d = 0u; d < D4; d++) {
            acc[d] = acc[d] * corr + w.x * v[o0 + d] + w.y * v[o1 + d] + w.z * v[o2 + d]
                + w.w * v[o3 + d];
        }
    }
    if (real) {
        // A row that sees no real key (a left-pad query) outputs exact zeros.
        let inv = select(0.0, 1.0 / l, l > 0.0);
        for (var d = 0u; d < D4; d++) {
            out[qo + d] = acc[d] * inv;
        }
        lse[bh * p.tq + i] = select(0.0, (m + log2(l)) * LN2, l > 0.0);
    }
}

// dQ, one invocation per (b, h, i): dQ_i = scale * sum_j P_ij (dO_i.V_j - D_i) K_j,
// keys KB at a time as in the forward.
@compute @workgroup_size(8)
fn attention_backward_dq(@builtin(workgroup_id) wg: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let rr = row_block(linear_group(wg, nwg), lid, p.tq, CW, p.heads);
    if (past_end(rr, p.heads)) {
        return;
    }
    let bh = rr.bh;
    let b = rr.b;
    let h = rr.h;
    let g = kv_head(h);
    let i = min(rr.row, p.tq - 1u);
    let qo = q_base(b, i, h);
    var qr: array<vec4<f32>, DMAX4>;
    var dor: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
        qr[d] = q[qo + d] * p.scale_log2;
        dor[d] = dout[qo + d];
        acc[d] = vec4<f32>(0.0);
    }
    let st = stats[bh * p.tq + i];
    let end = key_end(i);
    let wg_end = key_end(min(rr.first + CW, p.tq) - 1u);
    for (var j = 0u; j < wg_end; j += KB) {
        let o = kv_block(b, j, wg_end - 1u, g);
        let o0 = o.x;
        let o1 = o.y;
        let o2 = o.z;
        let o3 = o.w;
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        var t2 = vec4<f32>(0.0);
        var t3 = vec4<f32>(0.0);
        var u0 = vec4<f32>(0.0);
        var u1 = vec4<f32>(0.0);
        var u2 = vec4<f32>(0.0);
        var u3 = vec4<f32>(0.0);
        // K rows kept for the dQ sum: loads run lane by lane on llvmpipe,
        // so reading them again cost more than the stack (GL backward 123 ms
        // against 88 ms at 1x12x256x64, with dK/dV's likewise).
        var ka: array<vec4<f32>, DMAX4>;
        var kb: array<vec4<f32>, DMAX4>;
        var kc: array<vec4<f32>, DMAX4>;
        var kd: array<vec4<f32>, DMAX4>;
        for (var d = 0u; d < D4; d++) {
            let x = qr[d];
            ka[d] = k[o0 + d];
            kb[d] = k[o1 + d];
            kc[d] = k[o2 + d];
            kd[d] = k[o3 + d];
            t0 += x * ka[d];
            t1 += x * kb[d];
            t2 += x * kc[d];
            t3 += x * kd[d];
        }
        for (var d = 0u; d < D4; d++) {
            let y = dor[d];
            u0 += y * v[o0 + d];
            u1 += y * v[o1 + d];
            u2 += y * v[o2 + d];
            u3 += y * v[o3 + d];
        }
        // dS_ij with P_ij = exp2(s - lse2); 0 where row i may not see j.
        let s = vec4<f32>(hsum(t0), hsum(t1), hsum(t2), hsum(t3));
        let du = vec4<f32>(hsum(u0), hsum(u1), hsum(u2), hsum(u3));
        let ds = select(vec4<f32>(0.0), exp2(s - st.x) * (du - st.y), key_block_ok(b, j, end));
        for (var d = 0u; d < D4; d++) {
            acc[d] += ds.x * ka[d] + ds.y * kb[d] + ds.z * kc[d] + ds.w * kd[d];
        }
    }
    if (rr.row < p.tq) {
        for (var d = 0u; d < D4; d++) {
            dq[qo + d] = acc[d] * p.scale;
        }
    }
}

// dK and dV, one invocation per cache row (b, g, j) of KV head g:
// dV_j = sum_h sum_i P_ij dO_i, dK_j = scale * sum_h sum_i P_ij (dO_i.V_j - D_i) Q_i
// over the query heads h of g's group, queries KB at a time. Rows past tk and
// padded keys get zeros.
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
    var kr: array<vec4<f32>, DMAX4>;
    var vr: array<vec4<f32>, DMAX4>;
    var gk: array<vec4<f32>, DMAX4>;
    var gv: array<vec4<f32>, DMAX4>;
    let live = j < p.tk && key_real(b, j);
    for (var d = 0u; d < D4; d++) {
        // Zeroed for dead rows: cache slots past tk may hold anything.
        kr[d] = select(vec4<f32>(0.0), k[ko + d] * p.scale_log2, live);
        vr[d] = select(vec4<f32>(0.0), v[ko + d], live);
        gk[d] = vec4<f32>(0.0);
        gv[d] = vec4<f32>(0.0);
    }
    let start = select(p.tq, query_start(j), live);
    // Keys of this block at or past tk see no query at all.
    let wg_start = select(p.tq, query_start(rr.first), rr.first < p.tk);
    let group = p.heads / p.kv_heads;
    let last = p.tq - 1u;
    for (var h = rr.h * group; h < (rr.h + 1u) * group; h++) {
        let bh = b * p.heads + h;
        for (var i = wg_start; i < p.tq; i += KB) {
            let i1 = min(i + 1u, last);
            let i2 = min(i + 2u, last);
            let i3 = min(i + 3u, last);
            let o0 = q_base(b, i, h);
            let o1 = q_base(b, i1, h);
            let o2 = q_base(b, i2, h);
            let o3 = q_base(b, i3, h);
            var t0 = vec4<f32>(0.0);
            var t1 = vec4<f32>(0.0);
            var t2 = vec4<f32>(0.0);
            var t3 = vec4<f32>(0.0);
            var u0 = vec4<f32>(0.0);
            var u1 = vec4<f32>(0.0);
            var u2 = vec4<f32>(0.0);
            var u3 = vec4<f32>(0.0);
            // The block's Q and dO rows, kept for the sums (see dQ's K rows).
            var qa: array<vec4<f32>, DMAX4>;
            var qb: array<vec4<f32>, DMAX4>;
            var qc: array<vec4<f32>, DMAX4>;
            var qd: array<vec4<f32>, DMAX4>;
            var da: array<vec4<f32>, DMAX4>;
            var db: array<vec4<f32>, DMAX4>;
            var dc: array<vec4<f32>, DMAX4>;
            var dd: array<vec4<f32>, DMAX4>;
            for (var d = 0u; d < D4; d++) {
                let x = kr[d];
                qa[d] = q[o0 + d];
                qb[d] = q[o1 + d];
                qc[d] = q[o2 + d];
                qd[d] = q[o3 + d];
                t0 += x * qa[d];
                t1 += x * qb[d];
                t2 += x * qc[d];
                t3 += x * qd[d];
            }
            for (var d = 0u; d < D4; d++) {
                let y = vr[d];
                da[d] = dout[o0 + d];
                db[d] = dout[o1 + d];
                dc[d] = dout[o2 + d];
                dd[d] = dout[o3 + d];
                u0 += y * da[d];
                u1 += y * db[d];
                u2 += y * dc[d];
                u3 += y * dd[d];
            }
            let s0 = stats[bh * p.tq + i];
            let s1 = stats[bh * p.tq + i1];
            let s2 = stats[bh * p.tq + i2];
            let s3 = stats[bh * p.tq + i3];
            let ii = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
            let seen = (ii >= vec4<u32>(start)) & (ii < vec4<u32>(p.tq));
            let s = vec4<f32>(hsum(t0), hsum(t1), hsum(t2), hsum(t3));
            let pij = select(vec4<f32>(0.0), exp2(s - vec4<f32>(s0.x, s1.x, s2.x, s3.x)), seen);
            let du = vec4<f32>(hsum(u0), hsum(u1), hsum(u2), hsum(u3));
            let ds = pij * (du - vec4<f32>(s0.y, s1.y, s2.y, s3.y));
            for (var d = 0u; d < D4; d++) {
                gv[d] += pij.x * da[d] + pij.y * db[d] + pij.z * dc[d] + pij.w * dd[d];
            }
            for (var d = 0u; d < D4; d++) {
                gk[d] += ds.x * qa[d] + ds.y * qb[d] + ds.z * qc[d] + ds.w * qd[d];
            }
        }
    }
    if (rr.row < p.kv_stride) {
        for (var d = 0u; d < D4; d++) {
            dk[ko + d] = gk[d] * p.scale;
            dv[ko + d] = gv[d];
        }
    }
}
