// Entropy of softmax(x / T) per row, over logits [N, V] (N = B*T):
//   forward:  x [N, V] -> h [N]; saves lse [N] and mean [N] (= sum p*z)
//   backward: x, lse, mean, dh [N] -> dx [N, V]
// Rows are chunked by the host so each [rows, V] range fits one binding.
//
// This file: one invocation per row, WG rows per workgroup, no barriers, no
// subgroups (GL). entropy_subgroup.wgsl: one subgroup per row.
//#include common/grid
//#include common/lanes_single
//#include common/entropy_rows

@compute @workgroup_size(WG)
fn entropy_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * WG + lid;
    if (row < p.rows) {
        entropy_forward_row(row, 0u, 1u);
    }
}

@compute @workgroup_size(WG)
fn entropy_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * WG + lid;
    if (row < p.rows) {
        entropy_backward_row(row, 0u, 1u);
    }
}
