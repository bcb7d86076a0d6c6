// Fused cross-entropy and token log-probs over logits [N, V] (N = B*T):
//   forward:  logits [N, V], targets i32 [N] -> out [N], lse [N] (saved)
//   backward: logits, targets, lse, dout [N] -> dlogits [N, V]
// cross-entropy: out = lse - x[t]; token log-probs: out = x[t]/T - lse(x/T).
// Forward saves only lse [N] (plus the logits and targets it was given);
// backward recomputes the softmax from it. Rows are chunked by the host so
// each [rows, V] range fits one binding.
//
// This file: one invocation per row, WG rows per workgroup, no barriers, no
// subgroups (GL). cross_entropy_subgroup.wgsl: one subgroup per row.
//#include common/grid
//#include common/lanes_single
//#include common/cross_entropy_rows

@compute @workgroup_size(WG)
fn cross_entropy_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * WG + lid;
    if (row < p.rows) {
        cross_entropy_forward_row(row, 0u, 1u);
    }
}

@compute @workgroup_size(WG)
fn cross_entropy_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg) * WG + lid;
    if (row < p.rows) {
        cross_entropy_backward_row(row, 0u, 1u);
    }
}
