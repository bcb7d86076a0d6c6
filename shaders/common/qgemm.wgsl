// Shared body of the dequantizing matmuls (qmatmul_int8, qmatmul_nf4):
//   forward  y[m, n]  = Σ_k x[m, k]  · W[n, k]  (+ bias[n])   (C = A · Wᵀ)
//   backward dx[m, k] = Σ_n dy[m, n] · W[n, k]                (C = A · W)
// W [N, K] is the frozen quantized weight; only its dequantized values enter
// the products (f32 accumulation); the full-precision W never exists.
//
// Contract with the including shader, which declares:
//   @binding(0) p: QgemmParams   @binding(1) x: array<f32>   @binding(2) x4: array<vec4<f32>>
//   @binding(3) bias: array<f32> @binding(4) y: array<f32> (read_write)
//   fn decode8(row: u32, col: u32, col_end: u32) -> Dec8
//     = W[row, col .. col+8] dequantized (col % 8 == 0), zero where col + j >= col_end.
// x / x4 are the A operand (x forward, dy backward) over the same bound range.
//
// Why this shape (CPU adapters first): one workgroup = 8 invocations = one
// SIMD group on llvmpipe. The workgroup owns 8 output columns and 128 rows;
// for each 64-step chunk of the reduction, the 8 lanes decode the 8×64
// weight tile ONCE into workgroup memory (each lane 8 groups of 8), then
// every lane multiplies its 16 rows of A against it with vec4/mat4 FMAs
// (the f32 matmul's register blocking). Decoding is thus amortised over 128
// rows, and there are 2 barriers per 64 reduction steps. Out-of-range tile
// entries are zero, so the inner loop needs no tail: A values read past an
// edge (clamped addresses, finite) meet zero weights. Rows and columns past
// the edge are never stored.
//
// llvmpipe stops an invocation after 65535 loop iterations in total: one
// chunk costs 1 + 8 (decode) + 16 (FMA) iterations, and the host splits the
// reduction into dispatches of at most 65536 steps (accumulate = 1 after the
// first), i.e. ≤ 25,600 iterations per invocation.

struct QgemmParams {
    m: u32,          // rows of A and C in this dispatch
    cols: u32,       // columns of C (N forward, K backward)
    r0: u32,         // reduction range [r0, r1) of this dispatch (r0 % 64 == 0)
    r1: u32,
    wn: u32,         // weight rows N
    wk: u32,         // weight columns K
    ldx: u32,        // row stride of A
    x_off: u32,      // residual element offsets inside the bound ranges
    y_off: u32,
    has_bias: u32,
    accumulate: u32, // C += instead of C =
    zero: u32,       // always 0 (a runtime value the compiler cannot fold)
    qscale: f32,     // a format constant passed at run time (int8: 1/127), see the format
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Dec8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// A rows start 16-byte aligned (ldx % 4 == 0, x_off % 4 == 0): vec4 loads.
override VEC_X: bool = false;

const KC: u32 = 64u;   // reduction steps per tile
const TM: u32 = 16u;   // rows per invocation
const QLANES: u32 = 8u;
const QROWS: u32 = 128u; // rows per workgroup = QLANES * TM
const QCOLS: u32 = 8u;   // columns per workgroup

// The decoded tile: 8 columns × 64 reduction steps, as vec4s.
// Forward layout:  wt[c * 16 + r / 4] = W[n0 + c, rc + r .. +4]
// Backward layout: wt[r * 2 + h]      = W[rc + r, c0 + 4h .. +4]
var<workgroup> wt: array<vec4<f32>, 128>;

fn load_x(e: u32) -> vec4<f32> {
    if (VEC_X) {
        return x4[min(e >> 2u, arrayLength(&x4) - 1u)];
    }
    let last = arrayLength(&x) - 1u;
    return vec4<f32>(x[min(e, last)], x[min(e + 1u, last)], x[min(e + 2u, last)],
                     x[min(e + 3u, last)]);
}

// A rows m .. m+3 at reduction r .. r+3: result[i][kk] = A[m + i, r + kk].
fn a_panel(m: u32, r: u32) -> mat4x4<f32> {
    let e = p.x_off + m * p.ldx + r;
    return mat4x4<f32>(load_x(e), load_x(e + p.ldx), load_x(e + 2u * p.ldx),
                       load_x(e + 3u * p.ldx));
}

// B rows r .. r+3 (tile-relative kk), columns 4h .. 4h+3: result[kk][q] = B[kk, 4h + q].
fn b_panel_fwd(kk: u32, h: u32) -> mat4x4<f32> {
    let j = kk >> 2u;
    let c = 64u * h + j; // (4h) * 16 + j
    return transpose(mat4x4<f32>(wt[c], wt[c + 16u], wt[c + 32u], wt[c + 48u]));
}

fn b_panel_bwd(kk: u32, h: u32) -> mat4x4<f32> {
    let i = kk * 2u + h;
    return mat4x4<f32>(wt[i], wt[i + 2u], wt[i + 4u], wt[i + 6u]);
}

fn fill_tile(backward: bool, c0: u32, rc: u32, lid: u32) {
    for (var i = 0u; i < 8u; i++) {
        var d = Dec8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (backward) {
            // Lane lid: weight rows rc + 8·lid + i (reduction), columns c0 .. c0+7.
            let rr = lid * 8u + i;
            if (rc + rr < p.r1) {
                d = decode8(rc + rr, c0, p.wk);
            }
            wt[rr * 2u] = d.lo;
            wt[rr * 2u + 1u] = d.hi;
        } else {
            // Lane lid: weight row c0 + lid (output column), reduction rc + 8i .. +7.
            if (c0 + lid < p.wn) {
                d = decode8(c0 + lid, rc + 8u * i, p.r1);
            }
            wt[lid * 16u + 2u * i] = d.lo;
            wt[lid * 16u + 2u * i + 1u] = d.hi;
        }
    }
}

// THE store of every qmatmul kernel: bias, accumulation, and any later fused
// epilogue (e.g. a LoRA term) belong here and nowhere else.
fn store_out(m: u32, c: u32, v: f32) {
    if (m >= p.m || c >= p.cols) {
        return;
    }
    let i = p.y_off + m * p.cols + c;
    var o = v;
    if (p.has_bias != 0u) {
        o += bias[c];
    }
    if (p.accumulate != 0u) {
        o += y[i];
    }
    y[i] = o;
}

// acc[r] = C row m + r, columns c .. c+3.
fn store_block(m: u32, c: u32, acc: mat4x4<f32>) {
    for (var r = 0u; r < 4u; r++) {
        for (var q = 0u; q < 4u; q++) {
            store_out(m + r, c + q, acc[r][q]);
        }
    }
}

fn qgemm(backward: bool, wg: vec3<u32>, lid: u32) {
    let c0 = wg.x * QCOLS;
    let m0 = wg.y * QROWS + lid * TM;
    var c00 = mat4x4<f32>();
    var c01 = mat4x4<f32>();
    var c02 = mat4x4<f32>();
    var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>();
    var c11 = mat4x4<f32>();
    var c12 = mat4x4<f32>();
    var c13 = mat4x4<f32>();
    for (var rc = p.r0; rc < p.r1; rc += KC) {
        workgroupBarrier(); // everyone is done with the previous tile
        fill_tile(backward, c0, rc, lid);
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk += 4u) {
            let a0 = a_panel(m0, rc + kk);
            let a1 = a_panel(m0 + 4u, rc + kk);
            let a2 = a_panel(m0 + 8u, rc + kk);
            let a3 = a_panel(m0 + 12u, rc + kk);
            var b0: mat4x4<f32>;
            var b1: mat4x4<f32>;
            if (backward) {
                b0 = b_panel_bwd(kk, 0u);
                b1 = b_panel_bwd(kk, 1u);
            } else {
                b0 = b_panel_fwd(kk, 0u);
                b1 = b_panel_fwd(kk, 1u);
            }
            c00 += b0 * a0;
            c01 += b0 * a1;
            c02 += b0 * a2;
            c03 += b0 * a3;
            c10 += b1 * a0;
            c11 += b1 * a1;
            c12 += b1 * a2;
            c13 += b1 * a3;
        }
    }
    store_block(m0, c0, c00);
    store_block(m0 + 4u, c0, c01);
    store_block(m0 + 8u, c0, c02);
    store_block(m0 + 12u, c0, c03);
    store_block(m0, c0 + 4u, c10);
    store_block(m0 + 4u, c0 + 4u, c11);
    store_block(m0 + 8u, c0 + 4u, c12);
    store_block(m0 + 12u, c0 + 4u, c13);
}
