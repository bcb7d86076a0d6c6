// reduce: sum / mean / max over the last dim ([R, C] -> [R]) or over all
// elements (-> [1]), plus the column sums that elementwise backward needs.
//
// Row kernels run one invocation per row looping over C: on llvmpipe this
// beats any shared-memory tree, and it needs no barrier. Full reductions are
// two-level: `reduce_partials` writes one value per workgroup (grid-stride
// loop, one barrier, then invocation 0 adds the 64 lane sums in order), and
// the same entry with one workgroup finishes. Everything is deterministic.
//
// Max saves its argmax (first index on ties; NaN wins, as in torch) for
// backward, which scatters dy to it. Sum / mean save nothing (their backward
// is `elementwise_expand`).
//#include common/grid
//#include common/float_bits

struct ReduceParams {
    // rows (row kernels, scatter), elements (partials), rows of x (cols).
    n: u32,
    // C (row kernels, scatter) or M (cols).
    cols: u32,
    x_off: u32,
    y_off: u32,
    // Global index of x's first element here (max partials, scatter).
    base: u32,
    // Rows per block (cols), elements bound in dx (scatter).
    extra: u32,
    // First row of this launch (scatter).
    row0: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<u32>;
@group(0) @binding(4) var<storage, read> arg_in: array<u32>;

const WG: u32 = 64u;
const EMPTY: u32 = 0xffffffffu;

var<workgroup> lane_val: array<f32, WG>;
var<workgroup> lane_arg: array<u32, WG>;

// Whether (v, i) beats the running (b, bi) for max: NaN beats numbers, then
// larger values, then the smaller index.
fn beats(v: f32, i: u32, b: f32, bi: u32) -> bool {
    if (i == EMPTY) {
        return false;
    }
    if (bi == EMPTY) {
        return true;
    }
    let vn = is_nan(v);
    let bn = is_nan(b);
    if (vn != bn) {
        return vn;
    }
    if (!vn && v != b) {
        return v > b;
    }
    return i < bi;
}

// y[r] = scale * sum_c x[r, c]
@compute @workgroup_size(64)
fn reduce_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * WG + lid;
    if (r >= p.n) {
        return;
    }
    let start = p.x_off + r * p.cols;
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        s += x[start + c];
    }
    y[p.y_off + r] = p.scale * s;
}

// y[r] = max_c x[r, c], arg[r] = its first index.
@compute @workgroup_size(64)
fn reduce_max_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * WG + lid;
    if (r >= p.n) {
        return;
    }
    let start = p.x_off + r * p.cols;
    var best = x[start];
    var bi = 0u;
    for (var c = 1u; c < p.cols; c++) {
        let v = x[start + c];
        if (beats(v, c, best, bi)) {
            best = v;
            bi = c;
        }
    }
    y[p.y_off + r] = best;
    arg[p.y_off + r] = bi;
}

// y[y_off + g] = scale * (sum of this workgroup's grid-stride share of x).
@compute @workgroup_size(64)
fn reduce_partials(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let stride = nwg.x * WG;
    var s = 0.0;
    for (var i = wg.x * WG + lid; i < p.n; i += stride) {
        s += x[p.x_off + i];
    }
    lane_val[lid] = s;
    workgroupBarrier();
    if (lid == 0u) {
        var t = 0.0;
        for (var l = 0u; l < WG; l++) {
            t += lane_val[l];
        }
        y[p.y_off + wg.x] = p.scale * t;
    }
}

// Combines the lanes' (value, index) pairs; invocation 0 stores the winner.
fn store_max(lid: u32, slot: u32, v: f32, i: u32) {
    lane_val[lid] = v;
    lane_arg[lid] = i;
    workgroupBarrier();
    if (lid == 0u) {
        var best = v;
        var bi = i;
        for (var l = 1u; l < WG; l++) {
            if (beats(lane_val[l], lane_arg[l], best, bi)) {
                best = lane_val[l];
                bi = lane_arg[l];
            }
        }
        y[p.y_off + slot] = best;
        arg[p.y_off + slot] = bi;
    }
}

// Level 1 of a full max: this workgroup's share of x, indices from `base`.
@compute @workgroup_size(64)
fn reduce_max_partials(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    var best = 0.0;
    var bi = EMPTY;
    for (var i = wg.x * WG + lid; i < p.n; i += nwg.x * WG) {
        let v = x[p.x_off + i];
        if (beats(v, p.base + i, best, bi)) {
            best = v;
            bi = p.base + i;
        }
    }
    store_max(lid, wg.x, best, bi);
}

// Level 2: the level-1 (value, index) pairs in x / arg_in.
@compute @workgroup_size(64)
fn reduce_max_final(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    var best = 0.0;
    var bi = EMPTY;
    for (var i = wg.x * WG + lid; i < p.n; i += nwg.x * WG) {
        let v = x[p.x_off + i];
        let gi = arg_in[p.x_off + i];
        if (beats(v, gi, best, bi)) {
            best = v;
            bi = gi;
        }
    }
    store_max(lid, wg.x, best, bi);
}

// Column sums of x viewed as [n, cols] (row stride `cols`) in blocks of
// `extra` rows, over the first `base` columns bound here:
// y[blk * base + j] (+)= sum over the block's rows of x[row, j]. Adds to y
// when row0 == 1 (rows too long for one binding go one at a time).
@compute @workgroup_size(64)
fn reduce_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let width = p.base;
    let col_groups = (width + WG - 1u) / WG;
    let g = linear_group(wg, nwg);
    let blk = g / col_groups;
    let j = (g % col_groups) * WG + lid;
    let r0 = blk * p.extra;
    if (j >= width || r0 >= p.n) {
        return;
    }
    let r1 = min(r0 + p.extra, p.n);
    var s = 0.0;
    for (var r = r0; r < r1; r++) {
        s += x[p.x_off + r * p.cols + j];
    }
    let o = p.y_off + blk * width + j;
    if (p.row0 == 1u) {
        s += y[o];
    }
    y[o] = s;
}

// Max backward into a zeroed dx (binding 2): for row r of this launch,
// dx[(row0 + r) * C + arg[r]] = dy[r] if that element is bound here
// (dx holds elements [base, base + extra)).
@compute @workgroup_size(64)
fn reduce_max_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let r = linear_group(wg, nwg) * WG + lid;
    if (r >= p.n) {
        return;
    }
    let gi = (p.row0 + r) * p.cols + arg_in[p.y_off + r];
    if (gi >= p.base && gi - p.base < p.extra) {
        y[p.x_off + gi - p.base] = x[p.y_off + r];
    }
}
