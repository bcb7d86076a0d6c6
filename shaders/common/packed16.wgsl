// Packed 16-bit float helpers (f16 and bf16 stored two per u32).
//
// Tensor storage (src/tensor.rs) packs F16/BF16 tensors two elements per u32
// word, element 2i in the low half and 2i+1 in the high half. These helpers
// widen them to f32 with plain integer/bit operations, so kernels need neither
// the shader-f16 feature nor any backend the GL path lacks. Both conversions
// are exact (every f16 and bf16 value is representable in f32).
//
// Storage dtype codes, shared by kernels that take an `override` for the
// dtype of a buffer bound as array<u32>:
const DTYPE_F32: u32 = 0u;
const DTYPE_F16: u32 = 1u;
const DTYPE_BF16: u32 = 2u;

// bf16 is the top half of an f32: shift it back into place.
fn bf16_lo(w: u32) -> f32 {
    return bitcast<f32>(w << 16u);
}

fn bf16_hi(w: u32) -> f32 {
    return bitcast<f32>(w & 0xffff0000u);
}

fn unpack_bf16x2(w: u32) -> vec2<f32> {
    return vec2<f32>(bf16_lo(w), bf16_hi(w));
}

// f16 uses the builtin, which handles subnormals, infinities and NaN.
fn unpack_f16x2(w: u32) -> vec2<f32> {
    return unpack2x16float(w);
}

// Element `e` (counted in elements from the start of the bound array) of an
// array<u32> holding `dtype`-coded data, widened to f32.
fn load_packed(buf_word: u32, e: u32, dtype: u32) -> f32 {
    if (dtype == DTYPE_F32) {
        return bitcast<f32>(buf_word);
    }
    let halves = select(unpack_f16x2(buf_word), unpack_bf16x2(buf_word), dtype == DTYPE_BF16);
    return select(halves.x, halves.y, (e & 1u) == 1u);
}

// Word that holds element `e` in a `dtype`-coded array<u32>.
fn packed_word_index(e: u32, dtype: u32) -> u32 {
    return select(e >> 1u, e, dtype == DTYPE_F32);
}
