// sample: next-token choice on the device, in transformers' order
// (RepetitionPenaltyLogitsProcessor, temperature, TopKLogitsWarper,
// TopPLogitsWarper, then argmax or a draw), so that only the chosen ids
// (B × 4 bytes) go back to the host per token. Inference only: no backward.
//
// For row b over the `valid` first entries of logits [B, stride]:
//   x_i  = l_i · (l_i < 0 ? penalty : 1/penalty) if i was seen in the row's
//          context, else l_i; then x_i / T unless greedy
//   greedy: the first index of max x
//   top-k: keep x_i ≥ the k-th largest x (ties with it kept)
//   top-p: sort ascending by (x, i) (a stable sort); drop the prefix whose
//          cumulative probability is ≤ 1 − p
//   draw: with e_i = exp(x_i − max) over kept i, the first i (index order)
//         with u·Σe < Σ_{j≤i} e_j; u from SplitMix64 (below)
// Thresholds are found by bisection over the order-preserving u32 key of x
// (counts for top-k, probability mass for top-p), then over the index among
// ties, so no sort and no [V]-sized scratch is needed.
//
// Sums of e are taken per chunk (CHUNKS contiguous index ranges, each summed
// in index order), then over the chunks: a fixed tree for a total, an
// in-order scan for the draw. The chunks are fixed, not the invocations: WG
// invocations own CHUNKS / WG chunks each, so the sums (and the ids drawn)
// do not depend on WG, the host's choice per adapter: 64 on GPUs, 8 (one
// SIMD row) on llvmpipe, where each barrier switches every invocation's
// coroutine (256 made this kernel 3x slower than 64).
//
// Randomness: the host's `Rng` (SplitMix64) streams are continued here, one
// per seed; row b draws from stream s = stream[b], whose state lives in
// rng[2s..2s+2] (lo, hi). A step's draws of one stream go, in row order, to
// its rows not yet finished (as the CPU sampler draws them), so row b uses
// state_s + (k_b + 1)·γ with k_b = unfinished rows of stream s before b;
// `sample_advance` then moves each state past its rows. Finished rows count
// in neither, so dropping them from the batch (DeviceSampler::keep_rows)
// changes no draw, and a batch of chunks with a stream each draws what the
// chunks draw one at a time.
// The draws are the CPU sampler's, but u keeps 24 of its 53 bits and the
// CDF is summed in f32, so an id differs from the f64 reference whenever a
// draw falls within f32 resolution of any of the V CDF boundaries: about
// V·1e-7 per draw (never seen at V ≈ 300 in the tests; about once per few
// thousand tokens at the demo's vocab).
// Stop handling: finished rows emit `pad` and draw nothing; `sample_advance`
// marks a row finished when its id is one of `stop` and records the id in
// the row's `seen` bitmap (for the penalty).
//#include common/grid
//#include common/splitmix64
//#include common/exp_neg
//#include common/float_bits
//#include common/wg_reduce

struct SampleParams {
    batch: u32,
    // Row stride of logits (the head's vocab) and the sampled range.
    stride: u32,
    valid: u32,
    greedy: u32,
    temperature: f32,
    top_k: u32,
    top_p: f32,
    penalty: f32,
    pad: u32,
    n_stop: u32,
    // u32 words per row of `seen` (valid / 32, rounded up).
    seen_words: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: SampleParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> stop: array<u32>;
// [lo, hi] of each stream's SplitMix64 state.
@group(0) @binding(3) var<storage, read_write> rng: array<u32>;
// [B] 1 once a row has ended.
@group(0) @binding(4) var<storage, read_write> finished: array<u32>;
// [B] this step's ids.
@group(0) @binding(5) var<storage, read_write> chosen: array<u32>;
// [B, seen_words] bit i set when token i is in the row's context.
@group(0) @binding(6) var<storage, read_write> seen: array<u32>;
// [B] the RNG stream each row draws from.
@group(0) @binding(7) var<storage, read> stream: array<u32>;

override WG: u32 = 64u;
const CHUNKS: u32 = 256u;
// p.penalty != 1 (a constant: llvmpipe loads `seen` under a mask otherwise).
override PENALTY: bool = false;
// Chunks per invocation, at most MAX_CPI (WG = 8).
override CPI: u32 = CHUNKS / WG;
const MAX_CPI: u32 = 32u;
var<workgroup> one_u: u32;
var<workgroup> pick: atomic<u32>;

// Order-preserving key: a < b as floats ⇔ key(a) < key(b) (NaN aside).
fn key_of(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return b ^ select(0x80000000u, 0xffffffffu, (b >> 31u) == 1u);
}

fn is_seen(row: u32, i: u32) -> bool {
    return (seen[row * p.seen_words + (i >> 5u)] & (1u << (i & 31u))) != 0u;
}

fn value(row: u32, i: u32) -> f32 {
    var x = logits[row * p.stride + i];
    if (PENALTY && is_seen(row, i)) {
        x = select(x / p.penalty, x * p.penalty, x < 0.0);
    }
    if (p.greedy == 0u) {
        x = x / p.temperature;
    }
    return x;
}

// A candidate at all: finite or +inf, not NaN.
fn alive(x: f32) -> bool {
    return !is_nan(x) && !is_neg_inf(x);
}

// Index range of chunk c.
fn chunk_lo(c: u32) -> u32 {
    return min(c * ((p.valid + CHUNKS - 1u) / CHUNKS), p.valid);
}

fn chunk_hi(c: u32) -> u32 {
    return min((c + 1u) * ((p.valid + CHUNKS - 1u) / CHUNKS), p.valid);
}

// Index range of invocation lid's chunks (for order-free reductions).
fn lane_lo(lid: u32) -> u32 {
    return chunk_lo(lid * CPI);
}

fn lane_hi(lid: u32) -> u32 {
    return chunk_hi(lid * CPI + CPI - 1u);
}

// Σ over the chunks of `part` (chunk lid·CPI + q in part[q]), by the fixed
// pairwise tree over CHUNKS leaves; uniform.
fn sum_chunks(lid: u32, part: array<f32, MAX_CPI>) -> f32 {
    for (var q = 0u; q < CPI; q++) {
        red_f[lid * CPI + q] = part[q];
    }
    workgroupBarrier();
    for (var s = CHUNKS / 2u; s > 0u; s = s >> 1u) {
        for (var i = lid; i < s; i += WG) {
            red_f[i] = red_f[i] + red_f[i + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

//#include common/sample_cuts

fn choose_greedy(row: u32, lid: u32) -> u32 {
    var best = -3.4028235e38;
    var best_i = 0xffffffffu;
    for (var i = lane_lo(lid); i < lane_hi(lid); i++) {
        let x = value(row, i);
        if (x > best) {
            best = x;
            best_i = i;
        }
    }
    let m = max_f(lid, best);
    let first = min_u(lid, select(0xffffffffu, best_i, best == m && best_i != 0xffffffffu));
    return select(first, 0u, first == 0xffffffffu);
}

fn choose_sampled(row: u32, lid: u32, u: f32) -> u32 {
    var c = Cut(top_k_key(row, lid), 0u, 0u, 0.0);
    var local_max = -3.4028235e38;
    for (var i = lane_lo(lid); i < lane_hi(lid); i++) {
        let x = value(row, i);
        if (kept(c, x, i)) {
            local_max = max(local_max, x);
        }
    }
    c.m = max_f(lid, local_max);
    c = top_p_cut(row, lid, c);

    var part: array<f32, MAX_CPI>;
    for (var q = 0u; q < CPI; q++) {
        var e_sum = 0.0;
        for (var i = chunk_lo(lid * CPI + q); i < chunk_hi(lid * CPI + q); i++) {
            let x = value(row, i);
            if (kept(c, x, i)) {
                e_sum += exp_neg(x - c.m);
            }
        }
        part[q] = e_sum;
        red_f[lid * CPI + q] = e_sum;
    }
    // Inclusive prefix over the chunks, in index order, by one invocation.
    workgroupBarrier();
    if (lid == 0u) {
        var run = 0.0;
        for (var t = 0u; t < CHUNKS; t++) {
            run += red_f[t];
            red_f[t] = run;
        }
    }
    workgroupBarrier();
    let total = red_f[CHUNKS - 1u];
    let goal = u * total;
    for (var q = 0u; q < CPI; q++) {
        let ch = lid * CPI + q;
        let incl = red_f[ch];
        let prev = select(0.0, red_f[max(ch, 1u) - 1u], ch > 0u);
        // The chunk holding the goal; when rounding leaves the goal at the
        // total, the last chunk with mass (atomicMax) keeps its last token.
        if (part[q] > 0.0 && prev <= goal && (goal < incl || incl == total)) {
            let want = goal - prev;
            var cum = 0.0;
            var got = 0xffffffffu;
            var last = 0u;
            for (var i = chunk_lo(ch); i < chunk_hi(ch); i++) {
                let x = value(row, i);
                if (kept(c, x, i)) {
                    let e = exp_neg(x - c.m);
                    cum += e;
                    if (e > 0.0) {
                        last = i;
                    }
                    if (want < cum && got == 0xffffffffu) {
                        got = i;
                    }
                }
            }
            atomicMax(&pick, select(last, got, got != 0xffffffffu));
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        one_u = atomicLoad(&pick);
    }
    return workgroupUniformLoad(&one_u);
}

@compute @workgroup_size(WG)
fn sample_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wg, nwg);
    if (row >= p.batch) {
        return;
    }
    let s = stream[row];
    if (lid == 0u) {
        // The draw index: rows of this stream still running before this one.
        var k = 0u;
        for (var b = 0u; b < row; b++) {
            k += u32(finished[b] == 0u && stream[b] == s);
        }
        one_u = select(k, 0xffffffffu, finished[row] != 0u);
        atomicStore(&pick, 0u);
    }
    let draw = workgroupUniformLoad(&one_u);
    if (draw == 0xffffffffu) {
        if (lid == 0u) {
            chosen[row] = p.pad;
        }
        return;
    }
    var id: u32;
    if (p.greedy != 0u) {
        id = choose_greedy(row, lid);
    } else {
        let u = splitmix_unit(vec2<u32>(rng[2u * s], rng[2u * s + 1u]), draw);
        id = choose_sampled(row, lid, u);
    }
    if (lid == 0u) {
        chosen[row] = id;
    }
}

// One invocation: finish rows that chose a stop id, note the ids in `seen`
// and move each row's stream past its draw (γ per draw: the same state as
// one step of draws·γ, sums being mod 2^64).
@compute @workgroup_size(1)
fn sample_advance() {
    for (var b = 0u; b < p.batch; b++) {
        if (finished[b] != 0u) {
            continue;
        }
        if (p.greedy == 0u) {
            let i = 2u * stream[b];
            let st = add64(vec2<u32>(rng[i], rng[i + 1u]), GAMMA);
            rng[i] = st.x;
            rng[i + 1u] = st.y;
        }
        let id = chosen[b];
        if (p.seen_words > 0u && id < p.valid) {
            let w = b * p.seen_words + (id >> 5u);
            seen[w] = seen[w] | (1u << (id & 31u));
        }
        for (var s = 0u; s < p.n_stop; s++) {
            if (stop[s] == id) {
                finished[b] = 1u;
            }
        }
    }
}
