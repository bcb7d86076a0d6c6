// Lane reductions for the one-subgroup-per-row variant (see common/logit_rows).
//
// Each subgroup of a WG-wide workgroup takes one row. Lane index and lane count
// come from subgroupExclusiveAdd(1) / subgroupAdd(1), so nothing assumes a
// subgroup size (llvmpipe: 8; GPUs: 4..128) or that a workgroup is one full
// subgroup. Reductions are one subgroupMax/subgroupAdd each, without barriers.
// The row index is uniform within a subgroup, so these calls are too.
override WG: u32 = 8u;

fn lanes_max(x: f32) -> f32 {
    return subgroupMax(x);
}

fn lanes_sum(x: f32) -> f32 {
    return subgroupAdd(x);
}

// (row, lane, lanes) of this invocation; row = group * subgroups + subgroup id.
fn subgroup_row(group: u32, sid: u32, nsg: u32) -> vec3<u32> {
    return vec3<u32>(group * nsg + sid, subgroupExclusiveAdd(1u), subgroupAdd(1u));
}
