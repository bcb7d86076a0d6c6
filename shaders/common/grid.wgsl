// Grid helpers shared by kernels.
//
// Large 1-D launches are folded into (x, y) workgroup grids because each
// dimension is capped at 65535 groups (see `groups_1d` in src/kernel.rs).
// `linear_group` undoes the fold; callers bound-check the result.
fn linear_group(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}
