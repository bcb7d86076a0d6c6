// matmul, GPU variant (shared-memory tiles):
//   C[z] = accumulate·C[z] + op(A[z]) · op(B[z]) (+ bias), op = optional transpose.
// Shapes (elements, all f32, row-major): op(A) is [M, K], op(B) is [K, N], C is
// [M, N]; A is stored [M, K] (or [K, M] with TRANS_A), B is stored [K, N] (or
// [N, K] with TRANS_B). z is the batch (workgroup_id.z); each operand has its own
// batch stride (0 = shared weight). Offsets are residual element offsets inside
// the bound ranges, so the host can chunk operands larger than one binding.
// Forward saves nothing itself; the backward (src/ops/matmul.rs) reuses this
// entry with other transpose flags, plus `matmul_backward_bias` below.
//
// A 16×16 workgroup computes a 64×64 tile of C; each invocation owns a 4×4
// block at stride 16 (rows ty + 16i, columns tx + 16j), so its shared-memory
// reads of one k row hit 16 consecutive words across the lanes and its stores
// to C are coalesced. The block lives in four vec4 registers (one per row):
// an indexed local array may be placed in memory by a GPU compiler. Tiles of A and B are staged in K-steps of 16, read from
// global memory along whichever storage axis is contiguous for the transpose
// flags, zero-padded at the edges so the inner loop needs no bounds checks.
// The CPU adapter uses matmul_cpu.wgsl instead (no shared memory there).
//
// LoRA: with the `LORA` override (common/lora_epilogue.wgsl) each invocation
// adds scale·Σ_j U[m, j]·V[n, j] to its 4×4 accumulators, 4 ranks at a time,
// before the one store (src/ops/lora.rs).
//#include common/matmul_params

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
// Tile rows are padded by one word: the stores that transpose (A without
// TRANS_A, B with TRANS_B: 16 lanes along k) then spread over the banks
// instead of all landing on one.
const LDT: u32 = 65u;

var<workgroup> a_tile: array<f32, 1040>; // [BK][LDT], m along the row
var<workgroup> b_tile: array<f32, 1040>; // [BK][LDT], n along the row

// Row m of this invocation's block: its 4 columns n0, n0+16, n0+32, n0+48
// get bias and the old C (accumulate) added, in that order, and are stored.
fn store_row(z: u32, m: u32, n0: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    let row = c_batch(z) + m * p.ldc;
    for (var j = 0u; j < 4u; j++) {
        let n = n0 + 16u * j;
        if (n < p.n) {
            var x = v[j];
            if (p.has_bias != 0u) {
                x += bias[p.bias_off + n];
            }
            if (p.accumulate != 0u) {
                x += c[row + n];
            }
            c[row + n] = x;
        }
    }
}

// The LoRA term for row m over ranks j .. j+3: each column's dot(U, V) is
// added to the accumulator on its own, as a scalar epilogue would.
fn lora_row(m: u32, j: u32, v: array<vec4<f32>, 4>, acc: vec4<f32>) -> vec4<f32> {
    let u = lora_u4(p.lora, m, j) * p.lora.scale;
    return acc + vec4<f32>(dot(u, v[0]), dot(u, v[1]), dot(u, v[2]), dot(u, v[3]));
}

@compute @workgroup_size(16, 16)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup, so returning here keeps barriers uniform.
    if (wg.z >= p.batch) {
        return;
    }
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let a_base = a_batch(wg.z);
    let b_base = b_batch(wg.z);
    // acc_i[j] is C[m0 + ty + 16i, n0 + tx + 16j]: four vectors, not an
    // indexed array, so that every accumulator stays in a register.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var r = 0u; r < 4u; r++) {
            let e = li + 256u * r;
            // Consecutive lanes walk the operand's contiguous storage axis.
            let am = select(e / BK, e % BM, TRANS_A);
            let ak = select(e % BK, e / BM, TRANS_A);
            let gm = m0 + am;
            let gak = k0 + ak;
            var av = 0.0;
            if (gm < p.m && gak < p.k) {
                av = a[a_base + select(gm * p.lda + gak, gak * p.lda + gm, TRANS_A)];
            }
            a_tile[ak * LDT + am] = av;
            let bn = select(e % BN, e / BK, TRANS_B);
            let bk = select(e / BN, e % BK, TRANS_B);
            let gn = n0 + bn;
            let gbk = k0 + bk;
            var bv = 0.0;
            if (gn < p.n && gbk < p.k) {
                bv = b[b_base + select(gbk * p.ldb + gn, gn * p.ldb + gbk, TRANS_B)];
            }
            b_tile[bk * LDT + bn] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let t = kk * LDT;
            let bk4 = vec4<f32>(b_tile[t + lid.x], b_tile[t + lid.x + 16u], b_tile[t + lid.x + 32u],
                                b_tile[t + lid.x + 48u]);
            acc0 = fma(vec4<f32>(a_tile[t + lid.y]), bk4, acc0);
            acc1 = fma(vec4<f32>(a_tile[t + lid.y + 16u]), bk4, acc1);
            acc2 = fma(vec4<f32>(a_tile[t + lid.y + 32u]), bk4, acc2);
            acc3 = fma(vec4<f32>(a_tile[t + lid.y + 48u]), bk4, acc3);
        }
        workgroupBarrier();
    }
    let m = m0 + lid.y;
    let n = n0 + lid.x;
    if (LORA) {
        for (var j = 0u; j < p.lora.rank; j += 4u) {
            let v = array<vec4<f32>, 4>(lora_v4(p.lora, n, j), lora_v4(p.lora, n + 16u, j),
                                        lora_v4(p.lora, n + 32u, j), lora_v4(p.lora, n + 48u, j));
            acc0 = lora_row(m, j, v, acc0);
            acc1 = lora_row(m + 16u, j, v, acc1);
            acc2 = lora_row(m + 32u, j, v, acc2);
            acc3 = lora_row(m + 48u, j, v, acc3);
        }
    }
    store_row(wg.z, m, n, acc0);
    store_row(wg.z, m + 16u, n, acc1);
    store_row(wg.z, m + 32u, n, acc2);
    store_row(wg.z, m + 48u, n, acc3);
}

// dbias[n] (+)= Σ_r dy[r, n]: column sums of the output gradient, one
// invocation per column (no barriers; fine on both adapters). Reuses the
// params: dy is `a` ([m rows, n cols], row stride lda, offset a_off) and dbias
// is `c` (offset c_off). The host chunks rows (accumulating) and columns so
// that each bound range fits one binding.
@compute @workgroup_size(64)
fn matmul_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.n) {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < p.m; r++) {
        s += a[p.a_off + r * p.lda + col];
    }
    let o = p.c_off + col;
    if (p.accumulate != 0u) {
        s += c[o];
    }
    c[o] = s;
}
