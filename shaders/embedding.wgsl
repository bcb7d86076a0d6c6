// embedding: out[n, :] = table[ids[n], :]; backward scatter-adds dout rows
// into the table gradient. row_gather (src/ops/row_gather.rs) is the same
// mechanism with x as the table and idx as the ids.
//
// Shapes: ids i32 [N] (N = B*T), table [V, C] (f32, or f16/bf16 packed two
// per u32; the dtype is the TABLE_DTYPE override), out f32 [N, C].
// Forward saves nothing on the GPU; backward needs the ids on the host.
//
// Chunking: the host splits out/dout into row ranges and the table into vocab
// row ranges that each fit one storage binding. Every binding may start below
// the first element it is used for (binding offset alignment); `*_off` and
// `table_base` say where in the bound range the chunk starts.
//
// Forward: one invocation per (n, c) of the out chunk. Only the table chunk
// holding ids[n] writes the element; an id outside [0, V) reads nothing and
// is written as 0 by the first table chunk, so every element is written once.
//
// Backward (race-free, deterministic, no atomics): the host groups positions
// by id into a CSR (sorted unique ids `uniq`, `offsets` [U+1], `positions`
// ascending within each id). One invocation per (unique id, c) sums its
// positions in order and adds the sum to dtable (zeroed by the host, so
// unused ids stay 0). With several dout chunks, each chunk adds its partial
// sums in chunk order: still a fixed order.
//#include common/grid
//#include common/packed16

struct EmbeddingParams {
    n: u32,          // rows of out in this chunk
    c: u32,          // columns
    vocab: u32,      // V
    row_lo: u32,     // table rows [row_lo, row_hi) are bound in this dispatch
    row_hi: u32,
    table_base: u32, // element index (of the whole table) at the binding start
    out_off: u32,    // element offset of this out chunk within its binding
    ids_off: u32,    // element offset of this ids chunk within its binding
    zero_oob: u32,   // 1: this dispatch writes zeros for out-of-range ids
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct EmbeddingBackwardParams {
    nu: u32,         // unique ids handled by this dispatch
    c: u32,
    u_lo: u32,       // first index into uniq/offsets
    table_base: u32, // element index (of the whole dtable) at the binding start
    dout_off: u32,   // element offset of the dout chunk's first row in its binding
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override TABLE_DTYPE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: EmbeddingParams;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@group(0) @binding(0) var<uniform> pb: EmbeddingBackwardParams;
@group(0) @binding(4) var<storage, read> uniq: array<i32>;
@group(0) @binding(5) var<storage, read> offsets: array<i32>;
@group(0) @binding(6) var<storage, read> positions: array<i32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(256)
fn embedding_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i >= p.n * p.c) {
        return;
    }
    let row = i / p.c;
    let col = i % p.c;
    let id = ids[p.ids_off + row];
    if (id >= i32(p.row_lo) && id < i32(p.row_hi)) {
        let e = u32(id) * p.c + col - p.table_base;
        out[p.out_off + i] = load_packed(table[packed_word_index(e, TABLE_DTYPE)], e, TABLE_DTYPE);
    } else if (p.zero_oob != 0u && (id < 0 || id >= i32(p.vocab))) {
        out[p.out_off + i] = 0.0;
    }
}

// The same four columns at a time (an f32 table, C and both chunks'
// element offsets multiples of 4; the host decides): one vec4 load and store
// where the scalar entry makes four, each a loop over llvmpipe's SIMD lanes.
@group(0) @binding(9) var<storage, read> table4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn embedding_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let q = linear_group(wg, nwg) * 256u + lid;
    let quads = p.c / 4u;
    if (q >= p.n * quads) {
        return;
    }
    let row = q / quads;
    let col = 4u * (q % quads);
    let id = ids[p.ids_off + row];
    let o = (p.out_off + row * p.c + col) >> 2u;
    if (id >= i32(p.row_lo) && id < i32(p.row_hi)) {
        out4[o] = table4[(u32(id) * p.c + col - p.table_base) >> 2u];
    } else if (p.zero_oob != 0u && (id < 0 || id >= i32(p.vocab))) {
        out4[o] = vec4<f32>(0.0);
    }
}

@compute @workgroup_size(256)
fn embedding_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i >= pb.nu * pb.c) {
        return;
    }
    let u = pb.u_lo + i / pb.c;
    let col = i % pb.c;
    let lo = offsets[u];
    let hi = offsets[u + 1u];
    var acc = 0.0;
    for (var k = lo; k < hi; k++) {
        acc += dout[pb.dout_off + u32(positions[k]) * pb.c + col];
    }
    let e = u32(uniq[u]) * pb.c + col - pb.table_base;
    dtable[e] = dtable[e] + acc;
}
