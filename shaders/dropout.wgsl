// dropout: y = x · mask / (1 - p) elementwise over any shape, and its
// backward dx = dy · mask / (1 - p) (the same map applied to dy).
//
// The mask is never stored. Element g (its flat index in the tensor) is kept
// iff r >= p.threshold, where r is word g % 4 of
//     philox4x32(counter = (g / 4, 0, offset_lo, offset_hi), key = (seed_lo, seed_hi)),
// and threshold = round(p · 2^32); backward regenerates the same mask from
// (seed, offset, g). Forward saves nothing; backward needs only the seed,
// offset and p.
//
// One invocation handles one Philox counter, i.e. the four elements 4c..4c+3
// (each Philox call yields four words), clipped to the chunk [lo, hi). Tensors
// larger than one binding are split by the host into chunks; a chunk's
// bindings start `base` elements before element `lo`.
//#include common/grid
//#include common/philox

struct DropoutParams {
    lo: u32,
    hi: u32,
    base: u32,
    threshold: u32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    offset_lo: u32,
    offset_hi: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: DropoutParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn apply_mask(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let c = (p.lo >> 2u) + linear_group(wg, nwg) * 64u + lid;
    if (c > ((p.hi - 1u) >> 2u) || p.hi == p.lo) {
        return;
    }
    let r = philox4x32(vec4<u32>(c, 0u, p.offset_lo, p.offset_hi),
                       vec2<u32>(p.seed_lo, p.seed_hi));
    for (var k = 0u; k < 4u; k++) {
        let g = 4u * c + k;
        if (g >= p.lo && g < p.hi) {
            let i = g - p.lo + p.base;
            dst[i] = select(0.0, src[i] * p.scale, r[k] >= p.threshold);
        }
    }
}

@compute @workgroup_size(64)
fn dropout_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    apply_mask(wg, nwg, lid);
}

@compute @workgroup_size(64)
fn dropout_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    apply_mask(wg, nwg, lid);
}
