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
// to C are coalesced. Tiles of A and B are staged in K-steps of 16, read from
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

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<workgroup> a_tile: array<f32, 1024>; // [BK][BM]
var<workgroup> b_tile: array<f32, 1024>; // [BK][BN]

@compute @workgroup_size(16, 16)
fn matmul_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup, so returning here keeps barriers uniform.
    if (wg.z >= p.batch) {
        return;
    }
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let a_base = p.a_off + wg.z * p.a_bs;
    let b_base = p.b_off + wg.z * p.b_bs;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
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
            a_tile[ak * BM + am] = av;
            let bn = select(e % BN, e / BK, TRANS_B);
            let bk = select(e / BN, e % BK, TRANS_B);
            let gn = n0 + bn;
            let gbk = k0 + bk;
            var bv = 0.0;
            if (gn < p.n && gbk < p.k) {
                bv = b[b_base + select(gbk * p.ldb + gn, gn * p.ldb + gbk, TRANS_B)];
            }
            b_tile[bk * BN + bn] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                ar[i] = a_tile[kk * BM + lid.y + 16u * i];
                br[i] = b_tile[kk * BN + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(ar[i], br[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    if (LORA) {
        let e = p.lora;
        for (var j = 0u; j < e.rank; j += 4u) {
            var u: array<vec4<f32>, 4>;
            var v: array<vec4<f32>, 4>;
            for (var i = 0u; i < 4u; i++) {
                u[i] = lora_u4(e, m0 + lid.y + 16u * i, j) * e.scale;
                v[i] = lora_v4(e, n0 + lid.x + 16u * i, j);
            }
            for (var i = 0u; i < 4u; i++) {
                for (var q = 0u; q < 4u; q++) {
                    acc[i * 4u + q] += dot(u[i], v[q]);
                }
            }
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y + 16u * i;
        if (m >= p.m) {
            break;
        }
        let row = p.c_off + wg.z * p.c_bs + m * p.ldc;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x + 16u * j;
            if (n < p.n) {
                var v = acc[i * 4u + j];
                if (p.has_bias != 0u) {
                    v += bias[p.bias_off + n];
                }
                if (p.accumulate != 0u) {
                    v += c[row + n];
                }
                c[row + n] = v;
            }
        }
    }
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
