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
// loads are workgroup-uniform: llvmpipe then does one scalar load per row
// instead of a per-lane gather. Lanes mask out what their own row may not see
// (with zero weights, so rows below tk of k/v must be finite, padded or not).
// Measured on llvmpipe this per-key loop beat blocking KB keys per step
// (a score array plus a second pass) by about 2x.
//#include common/attention_rows

const CW: u32 = 8u;

fn hsum(t: vec4<f32>) -> f32 {
    return t.x + t.y + t.z + t.w;
}

@compute @workgroup_size(8)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let rr = row_block(linear_group(wg, nwg), lid, p.tq, CW, p.heads);
    if (past_end(rr, p.heads)) {
        return;
    }
    let bh = rr.bh;
    let b = rr.b;
    let h = rr.h;
    let i = min(rr.row, p.tq - 1u);
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
    let wg_end = key_end(min(rr.first + CW, p.tq) - 1u);
    for (var j = 0u; j < wg_end; j++) {
        if (key_real(b, j)) {
            let ko = kv_base(b, j, kv_head(h));
            var t = vec4<f32>(0.0);
            for (var d = 0u; d < D4; d++) {
                t += qr[d] * k[ko + d];
            }
            // Online softmax one key at a time; the rescale is rare once the
            // running max settles. Keys past this row's end get weight 0.
            let sc = select(NEG, hsum(t), j < end);
            if (sc > m) {
                let corr = exp2(m - sc);
                l *= corr;
                for (var d = 0u; d < D4; d++) {
                    acc[d] *= corr;
                }
                m = sc;
            }
            let w = select(0.0, exp2(sc - m), j < end);
            l += w;
            for (var d = 0u; d < D4; d++) {
                acc[d] += w * v[ko + d];
            }
        }
    }
    if (rr.row < p.tq) {
        // A row that sees no real key (a left-pad query) outputs exact zeros.
        let inv = select(0.0, 1.0 / l, l > 0.0);
        for (var d = 0u; d < D4; d++) {
            out[qo + d] = acc[d] * inv;
        }
        lse[bh * p.tq + i] = select(0.0, (m + log2(l)) * LN2, l > 0.0);
    }
}

// dQ, one invocation per (b, h, i): dQ_i = scale * sum_j P_ij (dO_i.V_j - D_i) K_j.
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
    for (var j = 0u; j < wg_end; j++) {
        if (key_real(b, j)) {
            let ko = kv_base(b, j, kv_head(h));
            var t = vec4<f32>(0.0);
            var u = vec4<f32>(0.0);
            for (var d = 0u; d < D4; d++) {
                t += qr[d] * k[ko + d];
                u += dor[d] * v[ko + d];
            }
            // dS_ij with P_ij = exp2(s - lse2); 0 where row i may not see j.
            let ds = select(0.0, exp2(hsum(t) - st.x) * (hsum(u) - st.y), j < end);
            for (var d = 0u; d < D4; d++) {
                acc[d] += ds * k[ko + d];
            }
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
// over the query heads h of g's group. Rows past tk and padded keys get zeros.
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
    for (var h = rr.h * group; h < (rr.h + 1u) * group; h++) {
        let bh = b * p.heads + h;
        for (var i = wg_start; i < p.tq; i++) {
            let qo = q_base(b, i, h);
            let st = stats[bh * p.tq + i];
            var t = vec4<f32>(0.0);
            var u = vec4<f32>(0.0);
            for (var d = 0u; d < D4; d++) {
                t += kr[d] * q[qo + d];
                u += vr[d] * dout[qo + d];
            }
            let pij = select(0.0, exp2(hsum(t) - st.x), i >= start);
            let ds = pij * (hsum(u) - st.y);
            for (var d = 0u; d < D4; d++) {
                gv[d] += pij * dout[qo + d];
                gk[d] += ds * q[qo + d];
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
