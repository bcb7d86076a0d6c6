// sample's truncation cuts, included by sample.wgsl (which defines the
// params, `value`, the chunk ranges and the workgroup reductions they use):
// the top-k threshold key and the top-p cut, both found by bisection over
// the order-preserving key (see sample.wgsl's header).

// The top-k threshold key (kept: key ≥ it); 0 keeps everything.
fn top_k_key(row: u32, lid: u32) -> u32 {
    if (p.top_k == 0u || p.top_k >= p.valid) {
        return 0u;
    }
    var lo = 0u;
    var hi = 0xffffffffu;
    for (var it = 0u; it < 32u && lo < hi; it++) {
        let mid = lo + (hi - lo) / 2u + 1u;
        var n = 0u;
        for (var i = lane_lo(lid); i < lane_hi(lid); i++) {
            let x = value(row, i);
            n += u32(alive(x) && key_of(x) >= mid);
        }
        if (sum_u(lid, n) >= p.top_k) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    return lo;
}

// What survives top-k (kmin) and top-p ((key, index) > (cut_key, cut_idx)).
struct Cut {
    kmin: u32,
    cut_key: u32,
    cut_idx: u32,
    m: f32,
}

fn kept(c: Cut, x: f32, i: u32) -> bool {
    let k = key_of(x);
    return alive(x) && k >= c.kmin && (k > c.cut_key || (k == c.cut_key && i >= c.cut_idx));
}

// Mass of the top-k survivors whose (key, index) is below (k, j): key < k,
// or key == k and index < j.
fn mass_below(row: u32, lid: u32, c: Cut, k: u32, j: u32) -> f32 {
    var part: array<f32, MAX_CPI>;
    for (var q = 0u; q < CPI; q++) {
        var s = 0.0;
        for (var i = chunk_lo(lid * CPI + q); i < chunk_hi(lid * CPI + q); i++) {
            let x = value(row, i);
            let ki = key_of(x);
            if (kept(c, x, i) && (ki < k || (ki == k && i < j))) {
                s += exp_neg(x - c.m);
            }
        }
        part[q] = s;
    }
    return sum_chunks(lid, part);
}

// Sets the top-p cut: the largest prefix in (key, index) order whose mass
// is ≤ (1 − p)·Σe is dropped.
fn top_p_cut(row: u32, lid: u32, c0: Cut) -> Cut {
    var c = c0;
    if (p.top_p >= 1.0) {
        return c;
    }
    let total = mass_below(row, lid, c, 0xffffffffu, 0xffffffffu);
    let thr = (1.0 - p.top_p) * total;
    // The largest key v1 whose whole "≤ v1" set fits under thr.
    var lo = 0u;
    var hi = 0xfffffffeu;
    for (var it = 0u; it < 32u && lo < hi; it++) {
        let mid = lo + (hi - lo) / 2u + 1u;
        if (mass_below(row, lid, c, mid + 1u, 0u) <= thr) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    // The next key present, and how many survivors share it.
    var kmin_above = 0xffffffffu;
    for (var i = lane_lo(lid); i < lane_hi(lid); i++) {
        let x = value(row, i);
        if (kept(c, x, i) && key_of(x) > lo) {
            kmin_above = min(kmin_above, key_of(x));
        }
    }
    let vstar = min_u(lid, kmin_above);
    var ties = 0u;
    for (var i = lane_lo(lid); i < lane_hi(lid); i++) {
        let x = value(row, i);
        ties += u32(kept(c, x, i) && key_of(x) == vstar);
    }
    let n_ties = sum_u(lid, ties);
    // Among ties at vstar, the lowest indices go first (a stable sort).
    var jlo = 0u;
    if (n_ties > 1u) {
        var jhi = p.valid;
        for (var it = 0u; it < 32u && jlo < jhi; it++) {
            let mid = jlo + (jhi - jlo) / 2u + 1u;
            if (mass_below(row, lid, c, vstar, mid) <= thr) {
                jlo = mid;
            } else {
                jhi = mid - 1u;
            }
        }
    }
    c.cut_key = vstar;
    c.cut_idx = jlo;
    return c;
}
