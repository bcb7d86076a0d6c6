// Lane reductions for the one-invocation-per-row variant (see common/logit_rows):
// a row has a single lane, so there is nothing to combine. Workgroups hold WG
// rows; no barriers, no subgroups (works on GL).
override WG: u32 = 64u;

fn lanes_max(x: f32) -> f32 {
    return x;
}

fn lanes_sum(x: f32) -> f32 {
    return x;
}
