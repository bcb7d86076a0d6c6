// Causal self-attention, the unfused baseline (forward only, for benchmarks
// and as a second reference): scores = q k^T * scale into a [B, H, Tq, Tk]
// buffer with the causal and padding masks, a row softmax in place, then
// out = P v. Shapes as in attention.wgsl (any head dim D).
//#include common/attention_params

@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// [batch, heads, tq, tk]
@group(0) @binding(12) var<storage, read_write> scores: array<f32>;

// One invocation per score (b, h, i, j); masked entries get NEG.
@compute @workgroup_size(64)
fn attention_naive_scores(@builtin(workgroup_id) wg: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let e = linear_group(wg, nwg) * 64u + lid;
    if (e >= p.batch * p.heads * p.tq * p.tk) {
        return;
    }
    let j = e % p.tk;
    let row = e / p.tk;
    let i = row % p.tq;
    let h = (row / p.tq) % p.heads;
    let b = row / (p.tq * p.heads);
    var sc = NEG;
    if (j < key_end(i) && key_real(b, j)) {
        let qo = ((b * p.tq + i) * p.heads + h) * p.d;
        let ko = ((b * p.kv_stride + j) * p.kv_heads + kv_head(h)) * p.d;
        var t = 0.0;
        for (var d = 0u; d < p.d; d++) {
            t += q[qo + d] * k[ko + d];
        }
        sc = t * p.scale;
    }
    scores[e] = sc;
}

// One invocation per row (b, h, i); a row with no allowed key becomes zeros.
@compute @workgroup_size(64)
fn attention_naive_softmax(@builtin(workgroup_id) wg: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * 64u + lid;
    if (row >= p.batch * p.heads * p.tq) {
        return;
    }
    let o = row * p.tk;
    var m = NEG;
    for (var j = 0u; j < p.tk; j++) {
        m = max(m, scores[o + j]);
    }
    var l = 0.0;
    for (var j = 0u; j < p.tk; j++) {
        let s = scores[o + j];
        let w = select(exp(s - m), 0.0, s == NEG);
        scores[o + j] = w;
        l += w;
    }
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var j = 0u; j < p.tk; j++) {
        scores[o + j] *= inv;
    }
}

// One invocation per output element (b, i, h, d): sum_j P[b, h, i, j] v[b, j, h, d].
@compute @workgroup_size(64)
fn attention_naive_pv(@builtin(workgroup_id) wg: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let e = linear_group(wg, nwg) * 64u + lid;
    if (e >= p.batch * p.tq * p.heads * p.d) {
        return;
    }
    let d = e % p.d;
    let h = (e / p.d) % p.heads;
    let i = (e / (p.d * p.heads)) % p.tq;
    let b = e / (p.d * p.heads * p.tq);
    let o = ((b * p.heads + h) * p.tq + i) * p.tk;
    var t = 0.0;
    for (var j = 0u; j < p.tk; j++) {
        t += scores[o + j] * v[((b * p.kv_stride + j) * p.kv_heads + kv_head(h)) * p.d + d];
    }
    out[e] = t;
}
