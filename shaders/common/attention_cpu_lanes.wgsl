// Shared by the subgroup attention kernels (attention_cpu_subgroup.wgsl,
// attention_cpu_subgroup_bwd.wgsl): a workgroup is one subgroup of 8 lanes,
// one row per lane; a row that every lane needs is loaded in chunks, lane l
// holding vec4s l, l + 8, .. of it, and subgroupBroadcast (a register
// extract on llvmpipe) hands each chunk to every lane.
//
// The kernels go over a row's S chunks through bdot_row and bacc_rows,
// unrolled by hand, never in a loop over s: llvmpipe (Mesa 22.3) leaves
// such a loop rolled once its body times S is large (8 dots at D = 64, or
// one bacc at D = 128), and the register arrays are then indexed at run
// time, lane by lane: 5-8x slower (dQ at 1x12x256x64: 49 ms against 10 ms;
// the forward at D = 128: 64 ms against 14 ms). For the same reason the
// kernels load a row's shares just before the dots that need them.
//#include common/attention_cpu_rows

// Chunks of D/4 per lane (1 ..= 4). A lane's chunk s of a row at vec4 `o` is
// vec4 o + 8s + lid, clamped to the row: lanes past D/4 repeat its last vec4,
// which only ever meets zero weights.
override S: u32 = (D4 + 7u) / 8u;

// Σ_c r[8s + c] · (chunk 8s + c of the shared row), chunk s of which every
// lane holds a part of in x: one row's dot with this lane's row r, 8 vec4s.
// Slots of r past D/4 are zero (see the kernels), so clamped chunks add 0.
fn bdot(r: ptr<function, array<vec4<f32>, DMAX4>>, s: u32, x: vec4<f32>) -> vec4<f32> {
    let e = 8u * s;
    return (*r)[e] * subgroupBroadcast(x, 0u) + (*r)[e + 1u] * subgroupBroadcast(x, 1u)
        + (*r)[e + 2u] * subgroupBroadcast(x, 2u) + (*r)[e + 3u] * subgroupBroadcast(x, 3u)
        + (*r)[e + 4u] * subgroupBroadcast(x, 4u) + (*r)[e + 5u] * subgroupBroadcast(x, 5u)
        + (*r)[e + 6u] * subgroupBroadcast(x, 6u) + (*r)[e + 7u] * subgroupBroadcast(x, 7u);
}

// acc[8s + c] = acc[8s + c]·corr + Σ_r w[r] · (chunk 8s + c of shared row r)
// for the 4 rows whose chunk s this lane holds in x0 .. x3. Slots past D/4
// collect finite junk that is never stored.
fn bacc(acc: ptr<function, array<vec4<f32>, DMAX4>>, s: u32, corr: f32, w: vec4<f32>,
        x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) {
    let e = 8u * s;
    (*acc)[e] = (*acc)[e] * corr + w.x * subgroupBroadcast(x0, 0u) + w.y * subgroupBroadcast(x1, 0u)
        + w.z * subgroupBroadcast(x2, 0u) + w.w * subgroupBroadcast(x3, 0u);
    (*acc)[e + 1u] = (*acc)[e + 1u] * corr + w.x * subgroupBroadcast(x0, 1u)
        + w.y * subgroupBroadcast(x1, 1u) + w.z * subgroupBroadcast(x2, 1u)
        + w.w * subgroupBroadcast(x3, 1u);
    (*acc)[e + 2u] = (*acc)[e + 2u] * corr + w.x * subgroupBroadcast(x0, 2u)
        + w.y * subgroupBroadcast(x1, 2u) + w.z * subgroupBroadcast(x2, 2u)
        + w.w * subgroupBroadcast(x3, 2u);
    (*acc)[e + 3u] = (*acc)[e + 3u] * corr + w.x * subgroupBroadcast(x0, 3u)
        + w.y * subgroupBroadcast(x1, 3u) + w.z * subgroupBroadcast(x2, 3u)
        + w.w * subgroupBroadcast(x3, 3u);
    (*acc)[e + 4u] = (*acc)[e + 4u] * corr + w.x * subgroupBroadcast(x0, 4u)
        + w.y * subgroupBroadcast(x1, 4u) + w.z * subgroupBroadcast(x2, 4u)
        + w.w * subgroupBroadcast(x3, 4u);
    (*acc)[e + 5u] = (*acc)[e + 5u] * corr + w.x * subgroupBroadcast(x0, 5u)
        + w.y * subgroupBroadcast(x1, 5u) + w.z * subgroupBroadcast(x2, 5u)
        + w.w * subgroupBroadcast(x3, 5u);
    (*acc)[e + 6u] = (*acc)[e + 6u] * corr + w.x * subgroupBroadcast(x0, 6u)
        + w.y * subgroupBroadcast(x1, 6u) + w.z * subgroupBroadcast(x2, 6u)
        + w.w * subgroupBroadcast(x3, 6u);
    (*acc)[e + 7u] = (*acc)[e + 7u] * corr + w.x * subgroupBroadcast(x0, 7u)
        + w.y * subgroupBroadcast(x1, 7u) + w.z * subgroupBroadcast(x2, 7u)
        + w.w * subgroupBroadcast(x3, 7u);
}

// One shared row's dot with this lane's row r: bdot over the S chunks of x.
fn bdot_row(r: ptr<function, array<vec4<f32>, DMAX4>>, x: array<vec4<f32>, 4>) -> f32 {
    var t = bdot(r, 0u, x[0]);
    if (S > 1u) {
        t += bdot(r, 1u, x[1]);
    }
    if (S > 2u) {
        t += bdot(r, 2u, x[2]);
    }
    if (S > 3u) {
        t += bdot(r, 3u, x[3]);
    }
    return hsum(t);
}

// bacc over the S chunks of the 4 shared rows x0 .. x3.
fn bacc_rows(acc: ptr<function, array<vec4<f32>, DMAX4>>, corr: f32, w: vec4<f32>,
             x0: array<vec4<f32>, 4>, x1: array<vec4<f32>, 4>, x2: array<vec4<f32>, 4>,
             x3: array<vec4<f32>, 4>) {
    bacc(acc, 0u, corr, w, x0[0], x1[0], x2[0], x3[0]);
    if (S > 1u) {
        bacc(acc, 1u, corr, w, x0[1], x1[1], x2[1], x3[1]);
    }
    if (S > 2u) {
        bacc(acc, 2u, corr, w, x0[2], x1[2], x2[2], x3[2]);
    }
    if (S > 3u) {
        bacc(acc, 3u, corr, w, x0[3], x1[3], x2[3], x3[3]);
    }
}
