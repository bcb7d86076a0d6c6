// softmax / log-softmax, subgroup variant: one subgroup per row, lanes stride
// over V and combine with one subgroupMax/subgroupAdd (no barrier). Shapes and
// saved tensors as in softmax.wgsl. Needs the SUBGROUP feature (not on GL).
//#include common/grid
//#include common/lanes_subgroup
//#include common/softmax_rows

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_id) sid: u32, @builtin(num_subgroups) nsg: u32) {
    let r = subgroup_row(linear_group(wg, nwg), sid, nsg);
    if (r.x < p.rows) {
        softmax_forward_row(r.x, r.y, r.z);
    }
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(subgroup_id) sid: u32, @builtin(num_subgroups) nsg: u32) {
    let r = subgroup_row(linear_group(wg, nwg), sid, nsg);
    if (r.x < p.rows) {
        softmax_backward_row(r.x, r.y, r.z);
    }
}
