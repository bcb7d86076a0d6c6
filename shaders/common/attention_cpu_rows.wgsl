// Shared by the CPU-adapter attention kernels (attention_cpu.wgsl,
// attention_cpu_subgroup.wgsl): rows per workgroup, the KB-key blocks and
// their masks.
//#include common/attention_rows

// Rows (query rows, or key rows for dK/dV) per workgroup: one per lane.
const CW: u32 = 8u;
// Keys (queries, for dK/dV) per step of the blocked loops.
const KB: u32 = 4u;

fn hsum(t: vec4<f32>) -> f32 {
    return t.x + t.y + t.z + t.w;
}

// First vec4 of K/V rows j .. j+3 of KV head g, clamped to row `last` (the
// clamped rows only ever get weight 0).
fn kv_block(b: u32, j: u32, last: u32, g: u32) -> vec4<u32> {
    return vec4<u32>(kv_base(b, j, g), kv_base(b, min(j + 1u, last), g),
                     kv_base(b, min(j + 2u, last), g), kv_base(b, min(j + 3u, last), g));
}

// Which of keys j .. j+3 a row whose window ends at `end` gives weight: seen
// (j + r < end) and not padding. The mask is read at clamped addresses.
fn key_block_ok(b: u32, j: u32, end: u32) -> vec4<bool> {
    let last = p.tk - 1u;
    let real = vec4<bool>(key_real(b, j), key_real(b, min(j + 1u, last)),
                          key_real(b, min(j + 2u, last)), key_real(b, min(j + 3u, last)));
    return real & (vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end));
}
