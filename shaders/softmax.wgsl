// softmax / log-softmax over the last dim, with temperature T:
//   x [N, V] -> y [N, V], y = softmax(x / T) or log_softmax(x / T).
// Forward saves y (its own output) for backward; backward: dy [N, V] -> dx [N, V].
// Rows are chunked by the host so each [rows, V] range fits one binding.
//
// This file: one invocation per row, WG rows per workgroup, no barriers, no
// subgroups (GL). softmax_subgroup.wgsl: one subgroup per row.
//#include common/grid
//#include common/lanes_single
//#include common/softmax_rows

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * WG + lid;
    if (row < p.rows) {
        softmax_forward_row(row, 0u, 1u);
    }
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * WG + lid;
    if (row < p.rows) {
        softmax_backward_row(row, 0u, 1u);
    }
}
