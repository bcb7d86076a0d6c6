// head_slice: gather one of q/k/v out of a fused QKV projection.
//
// x [R, S] (R = B·T rows), out [R, H·D]:
//   out[r, h·D + d] = x[r, base + h·head_stride + d]
// GPT-2's c_attn output is [q | k | v] over all heads: base = 0, C or 2C and
// head_stride = D. GPT-NeoX interleaves per head ([H, 3, D]): base = 0, D or
// 2D and head_stride = 3D.
// Backward scatters dout into the same columns of a zeroed dx [R, S]; the
// three slices of one projection touch disjoint columns.
// Nothing is saved for backward beyond the shapes.
//#include common/grid

struct HeadSliceParams {
    rows: u32,
    row_stride: u32,
    heads: u32,
    head_dim: u32,
    base: u32,
    head_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: HeadSliceParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// The same ranges as vec4s (the *4 entries).
@group(0) @binding(3) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dst4: array<vec4<f32>>;

// Index pair (packed output index, strided input index) of element i, or
// none past the end.
fn slice_index(i: u32) -> vec2<u32> {
    let width = p.heads * p.head_dim;
    let r = i / width;
    let c = i % width;
    let h = c / p.head_dim;
    let d = c % p.head_dim;
    return vec2<u32>(i, r * p.row_stride + p.base + h * p.head_stride + d);
}

@compute @workgroup_size(256)
fn head_slice_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.rows * p.heads * p.head_dim) {
        let ix = slice_index(i);
        dst[ix.x] = src[ix.y];
    }
}

@compute @workgroup_size(256)
fn head_slice_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.rows * p.heads * p.head_dim) {
        let ix = slice_index(i);
        dst[ix.y] = src[ix.x];
    }
}

// Four elements per invocation (D, base, head and row strides multiples of
// 4; the host decides): element i of the scalar entries is 4·q .. 4·q+3 here,
// moved as one vec4 (llvmpipe runs each storage access as a loop over its
// SIMD lanes).
@compute @workgroup_size(256)
fn head_slice_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let q = linear_group(wg, nwg) * 256u + lid;
    if (q < p.rows * p.heads * p.head_dim / 4u) {
        let ix = slice_index(4u * q);
        dst4[ix.x >> 2u] = src4[ix.y >> 2u];
    }
}

@compute @workgroup_size(256)
fn head_slice_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let q = linear_group(wg, nwg) * 256u + lid;
    if (q < p.rows * p.heads * p.head_dim / 4u) {
        let ix = slice_index(4u * q);
        dst4[ix.y >> 2u] = src4[ix.x >> 2u];
    }
}
