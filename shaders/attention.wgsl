// Causal self-attention, GPU variant: flash-style tiles in shared memory.
//
// Shapes: q, out [B, Tq, H, D]; k, v [B, Tcap, Hkv, D] (first Tk rows valid;
// query head h reads KV head h / (H / Hkv), see common/attention_params);
// optional key mask [B, mask_stride] i32; lse [B, H, Tq]. D % 4 == 0, D <= 128.
// Forward saves (q, k, v, out, lse); backward recomputes the probabilities
// (FlashAttention-2): a pre-pass forms D_i = rowsum(dO_i * O_i), one pass over
// query rows writes dQ, one over key rows writes dK and dV, so every output
// element has one writer and no atomics are needed.
//
// A workgroup owns WG consecutive rows of one (b, h), one row per invocation
// with its accumulators in registers, and streams the other operand through
// shared memory KT rows at a time (16 KiB: K and V, or Q and dO). The CPU
// variant is attention_cpu.wgsl.
//#include common/attention_rows

const WG: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> ta: array<vec4<f32>, 512>; // KT * DMAX4
var<workgroup> tb: array<vec4<f32>, 512>;
var<workgroup> treal: array<u32, KT>;

// Loads key rows j0 .. j0 + KT of (b, KV head g) into the tiles (K in ta,
// V in tb); treal flags the rows below `limit` that the mask keeps.
fn load_kv_tile(b: u32, g: u32, j0: u32, limit: u32, lid: u32) {
    for (var e = lid; e < KT * D4; e += WG) {
        let rr = e / D4;
        let d = e % D4;
        if (j0 + rr < limit) {
            let o = kv_base(b, j0 + rr, g) + d;
            ta[rr * DMAX4 + d] = k[o];
            tb[rr * DMAX4 + d] = v[o];
        }
    }
    if (lid < KT) {
        treal[lid] = u32(j0 + lid < limit && key_real(b, j0 + lid));
    }
}

// Loads query rows i0 .. i0 + KT of (b, h): Q in ta, dO in tb.
fn load_qd_tile(b: u32, h: u32, i0: u32, lid: u32) {
    for (var e = lid; e < KT * D4; e += WG) {
        let rr = e / D4;
        let d = e % D4;
        if (i0 + rr < p.tq) {
            let o = q_base(b, i0 + rr, h) + d;
            ta[rr * DMAX4 + d] = q[o];
            tb[rr * DMAX4 + d] = dout[o];
        }
    }
}

@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let rb = row_block(linear_group(wg, nwg), lid, p.tq, WG, p.heads);
    if (past_end(rb, p.heads)) {
        return;
    }
    let b = rb.b;
    let h = rb.h;
    let bh = rb.bh;
    let i0 = rb.first;
    let i = rb.row;
    let valid = i < p.tq;
    let qo = q_base(b, min(i, p.tq - 1u), h);
    var qr: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
        qr[d] = q[qo + d] * p.scale_log2;
        acc[d] = vec4<f32>(0.0);
    }
    var m = NEG;
    var l = 0.0;
    let end = select(0u, key_end(i), valid);
    let wg_end = key_end(min(i0 + WG, p.tq) - 1u);
    for (var j0 = 0u; j0 < wg_end; j0 += KT) {
        workgroupBarrier();
        load_kv_tile(b, kv_head(h), j0, wg_end, lid);
        workgroupBarrier();
        let n = min(KT, max(end, j0) - j0);
        for (var jj = 0u; jj < n; jj++) {
            if (treal[jj] != 0u) {
                var t = vec4<f32>(0.0);
                for (var d = 0u; d < D4; d++) {
                    t += qr[d] * ta[jj * DMAX4 + d];
                }
                let sc = t.x + t.y + t.z + t.w;
                // Online softmax, one key at a time: the rescale is rare
                // once the running max settles.
                if (sc > m) {
                    let corr = exp2(m - sc);
                    l *= corr;
                    for (var d = 0u; d < D4; d++) {
                        acc[d] *= corr;
                    }
                    m = sc;
                }
                let w = exp2(sc - m);
                l += w;
                for (var d = 0u; d < D4; d++) {
                    acc[d] += w * tb[jj * DMAX4 + d];
                }
            }
        }
    }
    if (valid) {
        let inv = select(0.0, 1.0 / l, l > 0.0);
        for (var d = 0u; d < D4; d++) {
            out[qo + d] = acc[d] * inv;
        }
        lse[bh * p.tq + i] = select(0.0, (m + log2(l)) * LN2, l > 0.0);
    }
}

@compute @workgroup_size(64)
fn attention_backward_dq(@builtin(workgroup_id) wg: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let rb = row_block(linear_group(wg, nwg), lid, p.tq, WG, p.heads);
    if (past_end(rb, p.heads)) {
        return;
    }
    let b = rb.b;
    let h = rb.h;
    let bh = rb.bh;
    let i0 = rb.first;
    let i = rb.row;
    let valid = i < p.tq;
    let qo = q_base(b, min(i, p.tq - 1u), h);
    var qr: array<vec4<f32>, DMAX4>;
    var dor: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
        qr[d] = q[qo + d] * p.scale_log2;
        dor[d] = dout[qo + d];
        acc[d] = vec4<f32>(0.0);
    }
    let st = stats[bh * p.tq + min(i, p.tq - 1u)];
    let end = select(0u, key_end(i), valid);
    let wg_end = key_end(min(i0 + WG, p.tq) - 1u);
    for (var j0 = 0u; j0 < wg_end; j0 += KT) {
        workgroupBarrier();
        load_kv_tile(b, kv_head(h), j0, wg_end, lid);
        workgroupBarrier();
        let n = min(KT, max(end, j0) - j0);
        for (var jj = 0u; jj < n; jj++) {
            if (treal[jj] != 0u) {
                var t = vec4<f32>(0.0);
                var u = vec4<f32>(0.0);
                for (var d = 0u; d < D4; d++) {
                    t += qr[d] * ta[jj * DMAX4 + d];
                    u += dor[d] * tb[jj * DMAX4 + d];
                }
                let pij = exp2(t.x + t.y + t.z + t.w - st.x);
                let ds = pij * (u.x + u.y + u.z + u.w - st.y);
                for (var d = 0u; d < D4; d++) {
                    acc[d] += ds * ta[jj * DMAX4 + d];
                }
            }
        }
    }
    if (valid) {
        for (var d = 0u; d < D4; d++) {
            dq[qo + d] = acc[d] * p.scale;
        }
    }
}

@compute @workgroup_size(64)
fn attention_backward_dkv(@builtin(workgroup_id) wg: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let rb = row_block(linear_group(wg, nwg), lid, p.kv_stride, WG, p.kv_heads);
    if (past_end(rb, p.kv_heads)) {
        return;
    }
    let b = rb.b;
    let j0w = rb.first;
    let j = rb.row;
    let valid = j < p.kv_stride;
    let live = j < p.tk && key_real(b, j);
    let ko = kv_base(b, min(j, p.kv_stride - 1u), rb.h);
    var kr: array<vec4<f32>, DMAX4>;
    var vr: array<vec4<f32>, DMAX4>;
    var gk: array<vec4<f32>, DMAX4>;
    var gv: array<vec4<f32>, DMAX4>;
    for (var d = 0u; d < D4; d++) {
        kr[d] = select(vec4<f32>(0.0), k[ko + d] * p.scale_log2, live);
        vr[d] = select(vec4<f32>(0.0), v[ko + d], live);
        gk[d] = vec4<f32>(0.0);
        gv[d] = vec4<f32>(0.0);
    }
    let start = select(p.tq, query_start(j), live);
    // Keys of this workgroup at or past tk see no query at all.
    let wg_start = select(p.tq, query_start(j0w), j0w < p.tk);
    // Sum over the query heads of this KV head's group (uniform bounds, so
    // every invocation reaches the barriers).
    let group = p.heads / p.kv_heads;
    for (var h = rb.h * group; h < (rb.h + 1u) * group; h++) {
        let bh = b * p.heads + h;
        for (var i0 = wg_start; i0 < p.tq; i0 += KT) {
            workgroupBarrier();
            load_qd_tile(b, h, i0, lid);
            workgroupBarrier();
            let ilo = max(start, i0) - i0;
            let ihi = min(KT, p.tq - i0);
            for (var ii = ilo; ii < ihi; ii++) {
                let st = stats[bh * p.tq + i0 + ii];
                var t = vec4<f32>(0.0);
                var u = vec4<f32>(0.0);
                for (var d = 0u; d < D4; d++) {
                    t += kr[d] * ta[ii * DMAX4 + d];
                    u += vr[d] * tb[ii * DMAX4 + d];
                }
                let pij = exp2(t.x + t.y + t.z + t.w - st.x);
                let ds = pij * (u.x + u.y + u.z + u.w - st.y);
                for (var d = 0u; d < D4; d++) {
                    gv[d] += pij * tb[ii * DMAX4 + d];
                    gk[d] += ds * ta[ii * DMAX4 + d];
                }
            }
        }
    }
    if (valid) {
        for (var d = 0u; d < D4; d++) {
            dk[ko + d] = gk[d] * p.scale;
            dv[ko + d] = gv[d];
        }
    }
}
