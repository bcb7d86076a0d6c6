// The params struct, transpose flags and bindings shared by the matmul
// kernels (matmul.wgsl and matmul_rows.wgsl for GPUs, matmul_cpu*.wgsl for
// CPU adapters), mirrored by `MatmulParams` in src/ops/matmul.rs. `lora` is the optional fused low-rank
// epilogue's part (common/lora_epilogue.wgsl).
//#include common/lora_epilogue

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_off: u32,
    lda: u32,
    a_bs: u32,
    accumulate: u32,
    b_off: u32,
    ldb: u32,
    b_bs: u32,
    has_bias: u32,
    c_off: u32,
    ldc: u32,
    c_bs: u32,
    bias_off: u32,
    lora: LoraEpilogue,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;

// The bindings every matmul kernel shares; C = op(A)·op(B) (+ bias).
@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Where batch entry z of A, B and C starts in its buffer (B may be shared:
// its batch stride is then 0).
fn a_batch(z: u32) -> u32 {
    return p.a_off + z * p.a_bs;
}

fn b_batch(z: u32) -> u32 {
    return p.b_off + z * p.b_bs;
}

fn c_batch(z: u32) -> u32 {
    return p.c_off + z * p.c_bs;
}
