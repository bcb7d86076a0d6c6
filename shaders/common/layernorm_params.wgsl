// The params struct and the row-kernel bindings shared by both layernorm
// variants (layernorm.wgsl: one invocation per row; layernorm_subgroup.wgsl:
// one workgroup per row), mirrored by `LayerNormParams` in
// src/ops/layernorm.rs. Shapes and saved values: see layernorm.wgsl.
//
// A chunk's [rows, C] bindings start `x_base` elements before its first row,
// its [rows] bindings `r_base` elements before; blk0 / blk_rows / nblk are
// the weight-gradient kernels' partial-sum blocks (layernorm.wgsl only).
//#include common/grid

struct LayerNormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    x_base: u32,
    r_base: u32,
    blk0: u32,
    blk_rows: u32,
    nblk: u32,
}

@group(0) @binding(0) var<uniform> p: LayerNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read> mean_in: array<f32>;
@group(0) @binding(10) var<storage, read> rstd_in: array<f32>;
