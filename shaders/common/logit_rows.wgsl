// Row reductions over logits [N, V] (N = B*T rows, V = vocabulary), shared by
// softmax, cross_entropy and entropy.
//
// A row is handled by `lanes` cooperating invocations: lane k visits columns
// k, k + lanes, ... and partial states are combined with `lanes_max` /
// `lanes_sum`, which the kernel file provides by including one variant:
// common/lanes_single (one invocation per row, no cross-lane work) or
// common/lanes_subgroup (one subgroup per row, subgroupMax/subgroupAdd, no
// barrier). The row math below is therefore written once for both.
//
// Online log-sum-exp: each lane keeps (m, s) with m its running max and
// s = sum exp(z - m). A new value z costs one exp: e = exp(-|z - m|), and
// either s += e (z <= m) or s = s*e + 1, m = z (new max). Each row is read
// once for logsumexp; ops that write a [N, V] result read it a second time.
// -inf logits (masked vocabulary) are allowed: differences are clamped to the
// finite range so that 0 * inf never appears.
//
// Loops take 8 (reductions) or 4 (maps) columns per lane and iteration, plus a
// short tail: llvmpipe stops a shader after 65535 loop iterations in total
// (LP_MAX_TGSI_LOOP_ITERATIONS, shared by all its loops), which one invocation
// per row would otherwise hit at V = 32k. The host checks the budget.

struct LogitsParams {
    rows: u32,  // rows in this chunk
    v: u32,     // row length
    x_off: u32, // residual element offset of the [rows, v] bindings
    r_off: u32, // residual element offset of the per-row [rows] bindings
    inv_t: f32, // 1 / temperature: rows are reduced over z = x * inv_t
    scale: f32, // op-specific factor (cross_entropy: +1 loss, -1 log-prob)
    mode: u32,  // op-specific flag (softmax: 1 = log-softmax)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: LogitsParams;
// The [N, V] rows being reduced (logits; softmax backward: its saved y).
@group(0) @binding(1) var<storage, read> x: array<f32>;

const LOWEST: f32 = -3.4028235e38;

fn clamp_finite(d: f32) -> f32 {
    return clamp(d, LOWEST, -LOWEST);
}

struct Lse {
    m: f32,
    s: f32,
}

fn lse_empty() -> Lse {
    return Lse(LOWEST, 0.0);
}

fn lse_push(a: Lse, z: f32) -> Lse {
    let d = clamp_finite(z - a.m);
    let e = exp(-abs(d));
    let up = d > 0.0;
    return Lse(select(a.m, z, up), select(a.s + e, fma(a.s, e, 1.0), up));
}

fn lse_combine(a: Lse, b: Lse) -> Lse {
    let m = max(a.m, b.m);
    return Lse(m, a.s * exp(clamp_finite(a.m - m)) + b.s * exp(clamp_finite(b.m - m)));
}

// Combines the lanes' states; every lane gets the row's state.
fn lse_merge(a: Lse) -> Lse {
    let m = lanes_max(a.m);
    return Lse(m, lanes_sum(a.s * exp(clamp_finite(a.m - m))));
}

fn lse_value(a: Lse) -> f32 {
    return a.m + log(a.s);
}

// Entropy state: (m, s) as above plus u = sum exp(z - m) * (z - m), so that
// sum p*z = m + u/s and H = log(s) - u/s without cancellation against lse.
struct Ent {
    m: f32,
    s: f32,
    u: f32,
}

fn ent_empty() -> Ent {
    return Ent(LOWEST, 0.0, 0.0);
}

fn ent_push(a: Ent, z: f32) -> Ent {
    let d = clamp_finite(z - a.m);
    let e = exp(-abs(d));
    let up = d > 0.0;
    // On a new max z, old terms rescale: e_i(z_i - m) -> e * e_i((z_i - m) - d).
    return Ent(
        select(a.m, z, up),
        select(a.s + e, fma(a.s, e, 1.0), up),
        select(fma(e, d, a.u), e * (a.u - a.s * d), up),
    );
}

fn ent_combine(a: Ent, b: Ent) -> Ent {
    let m = max(a.m, b.m);
    let da = clamp_finite(a.m - m);
    let db = clamp_finite(b.m - m);
    let ca = exp(da);
    let cb = exp(db);
    return Ent(m, ca * a.s + cb * b.s, ca * (a.u + a.s * da) + cb * (b.u + b.s * db));
}

fn ent_merge(a: Ent) -> Ent {
    let m = lanes_max(a.m);
    let shift = clamp_finite(a.m - m);
    let c = exp(shift);
    return Ent(m, lanes_sum(c * a.s), lanes_sum(c * (a.u + a.s * shift)));
}

fn zx(base: u32, j: u32) -> f32 {
    return x[base + j] * p.inv_t;
}

// logsumexp of z = x[base + j] / T over the row; this lane visits j = lane,
// lane + lanes, ... Four independent states give the CPU some ILP.
fn row_lse(base: u32, lane: u32, lanes: u32) -> f32 {
    var a0 = lse_empty();
    var a1 = lse_empty();
    var a2 = lse_empty();
    var a3 = lse_empty();
    var j = lane;
    for (; j + 7u * lanes < p.v; j += 8u * lanes) {
        a0 = lse_push(lse_push(a0, zx(base, j)), zx(base, j + 4u * lanes));
        a1 = lse_push(lse_push(a1, zx(base, j + lanes)), zx(base, j + 5u * lanes));
        a2 = lse_push(lse_push(a2, zx(base, j + 2u * lanes)), zx(base, j + 6u * lanes));
        a3 = lse_push(lse_push(a3, zx(base, j + 3u * lanes)), zx(base, j + 7u * lanes));
    }
    for (; j < p.v; j += lanes) {
        a0 = lse_push(a0, zx(base, j));
    }
    return lse_value(lse_merge(lse_combine(lse_combine(a0, a1), lse_combine(a2, a3))));
}

// The row's entropy state (m, s, u), as row_lse.
fn row_entropy(base: u32, lane: u32, lanes: u32) -> Ent {
    var a0 = ent_empty();
    var a1 = ent_empty();
    var a2 = ent_empty();
    var a3 = ent_empty();
    var j = lane;
    for (; j + 7u * lanes < p.v; j += 8u * lanes) {
        a0 = ent_push(ent_push(a0, zx(base, j)), zx(base, j + 4u * lanes));
        a1 = ent_push(ent_push(a1, zx(base, j + lanes)), zx(base, j + 5u * lanes));
        a2 = ent_push(ent_push(a2, zx(base, j + 2u * lanes)), zx(base, j + 6u * lanes));
        a3 = ent_push(ent_push(a3, zx(base, j + 3u * lanes)), zx(base, j + 7u * lanes));
    }
    for (; j < p.v; j += lanes) {
        a0 = ent_push(a0, zx(base, j));
    }
    return ent_merge(ent_combine(ent_combine(a0, a1), ent_combine(a2, a3)));
}
