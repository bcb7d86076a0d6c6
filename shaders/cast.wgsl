// cast: f32 <-> packed f16 / bf16 (two per u32 word, element 2i in the low
// half; an odd count leaves the last word's high half zero).
//
// Shapes: N elements; the f32 side is N words, the packed side ceil(N/2).
// cast_forward packs (f32 -> 16-bit), cast_backward unpacks (16-bit -> f32);
// unpacking is also the gradient of packing. Both work on bits only, so they
// match the `half` crate exactly, NaN payloads included. Nothing is saved.
//#include common/grid
//#include common/packed16

struct CastParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// 0: f16, 1: bf16.
override BF16: u32 = 0u;

@group(0) @binding(0) var<uniform> p: CastParams;
@group(0) @binding(1) var<storage, read> src32: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst16: array<u32>;
@group(0) @binding(3) var<storage, read> src16: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst32: array<u32>;

fn to16(x: u32) -> u32 {
    if (BF16 == 1u) {
        return f32_bits_to_bf16(x);
    }
    return f32_bits_to_f16(x);
}

fn from16(h: u32) -> u32 {
    if (BF16 == 1u) {
        return bf16_to_f32_bits(h);
    }
    return f16_to_f32_bits(h);
}

// One invocation per packed word.
@compute @workgroup_size(256)
fn cast_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let k = linear_group(wg, nwg) * 256u + lid;
    let i = 2u * k;
    if (i >= p.n) {
        return;
    }
    var w = to16(src32[i]);
    if (i + 1u < p.n) {
        w |= to16(src32[i + 1u]) << 16u;
    }
    dst16[k] = w;
}

// One invocation per element.
@compute @workgroup_size(256)
fn cast_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 256u + lid;
    if (i < p.n) {
        let h = (src16[i / 2u] >> (16u * (i & 1u))) & 0xffffu;
        dst32[i] = from16(h);
    }
}
