// Shared by the subgroup attention kernels (attention_cpu_subgroup.wgsl,
// attention_cpu_subgroup_bwd.wgsl): a workgroup is one subgroup of 8 lanes,
// one row per lane; a row that every lane needs is loaded in chunks, lane l
// holding vec4s l, l + 8, .. of it, and subgroupBroadcast (a register
// extract on llvmpipe) hands each chunk to every lane.
//
// Keep few shared rows live at once: compute each dot from the shares it
// needs before loading the next ones, and give each S loop one kind of
// work. Loading the 4 K and 4 V shares of a dQ block up front and running
// all 8 dots in one loop made dQ 5-8x slower on llvmpipe (Mesa 22.3: 49 ms
// against 10 ms at 1x12x256x64), and dK/dV likewise.
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
