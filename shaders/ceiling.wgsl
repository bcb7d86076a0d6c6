// Adapter ceilings for `engine bench`: arithmetic and memory peaks that every
// kernel's figure is reported against.
//
// fma_peak: each invocation runs ITERS rounds of 8 independent vec4 FMA
//   chains (enough independent work to fill SIMD lanes and pipelines), seeded
//   from memory so nothing folds at compile time. FLOPs = n·ITERS·8·4·2.
// copy_bandwidth: dst[i] = src[i] over vec4s. Bytes = 2·n·16.
//#include common/grid

struct CeilingParams {
    n: u32,
    iters: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: CeilingParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(64)
fn fma_peak(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 64u + lid;
    if (i >= p.n) {
        return;
    }
    let s = src[i % 64u];
    let m = vec4<f32>(0.9999, 1.0001, 0.99995, 1.00005);
    var a0 = s; var a1 = s + 1.0; var a2 = s + 2.0; var a3 = s + 3.0;
    var a4 = s + 4.0; var a5 = s + 5.0; var a6 = s + 6.0; var a7 = s + 7.0;
    for (var k = 0u; k < p.iters; k++) {
        a0 = fma(a0, m, s); a1 = fma(a1, m, s); a2 = fma(a2, m, s); a3 = fma(a3, m, s);
        a4 = fma(a4, m, s); a5 = fma(a5, m, s); a6 = fma(a6, m, s); a7 = fma(a7, m, s);
    }
    dst[i % 64u] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

@compute @workgroup_size(64)
fn copy_bandwidth(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wg, nwg) * 64u + lid;
    if (i < p.n) {
        dst[i] = src[i];
    }
}
