// Packed 16-bit floats: two per u32, element 2i in the low half.
//
// Conversions are done on bits, matching the `half` crate exactly (round to
// nearest even, overflow to ±Inf, subnormals kept, NaN stays NaN with its
// quiet bit set). WGSL leaves pack2x16float's rounding and out-of-range
// results implementation-defined, so it is not used here; none of this needs
// the shader-f16 feature. The *_bits functions never touch float registers,
// so NaN payloads survive; the pair helpers take and return f32 values.

// f32 bits -> f16 bits (low 16 bits of the result).
fn f32_bits_to_f16(x: u32) -> u32 {
    let sign = (x >> 16u) & 0x8000u;
    let exp = x & 0x7f800000u;
    let man = x & 0x007fffffu;
    if (exp == 0x7f800000u) {
        let nan_bit = select(0u, 0x0200u, man != 0u);
        return sign | 0x7c00u | nan_bit | (man >> 13u);
    }
    let half_exp = i32(exp >> 23u) - 127 + 15;
    if (half_exp >= 0x1f) {
        return sign | 0x7c00u;
    }
    if (half_exp <= 0) {
        if (14 - half_exp > 24) {
            return sign;
        }
        let m = man | 0x00800000u;
        let shift = u32(14 - half_exp);
        var half_man = m >> shift;
        let round_bit = 1u << (shift - 1u);
        if ((m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u) {
            half_man += 1u;
        }
        return sign | half_man;
    }
    let h = sign | (u32(half_exp) << 10u) | (man >> 13u);
    // Round to nearest even; a carry into the exponent is the correct result.
    if ((man & 0x1000u) != 0u && (man & 0x2fffu) != 0u) {
        return h + 1u;
    }
    return h;
}

// f16 bits (low 16 bits of h) -> f32 bits.
fn f16_to_f32_bits(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let exp = h & 0x7c00u;
    let man = h & 0x03ffu;
    if ((h & 0x7fffu) == 0u) {
        return sign;
    }
    if (exp == 0x7c00u) {
        if (man == 0u) {
            return sign | 0x7f800000u;
        }
        return sign | 0x7fc00000u | (man << 13u);
    }
    if (exp == 0u) {
        // Subnormal: normalise. e = leading zeros of man within 16 bits, minus 6.
        let e = countLeadingZeros(man) - 16u - 6u;
        return sign | ((127u - 15u - e) << 23u) | ((man << (14u + e)) & 0x007fffffu);
    }
    return sign | (((exp >> 10u) + 127u - 15u) << 23u) | (man << 13u);
}

// f32 bits -> bf16 bits, round to nearest even; NaN gets its quiet bit.
fn f32_bits_to_bf16(x: u32) -> u32 {
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (x >> 16u) | 0x0040u;
    }
    if ((x & 0x8000u) != 0u && (x & 0x17fffu) != 0u) {
        return (x >> 16u) + 1u;
    }
    return x >> 16u;
}

fn bf16_to_f32_bits(h: u32) -> u32 {
    if ((h & 0x7fffu) > 0x7f80u) {
        return (h | 0x0040u) << 16u;
    }
    return h << 16u;
}

fn pack_f16_pair(v: vec2<f32>) -> u32 {
    return f32_bits_to_f16(bitcast<u32>(v.x)) | (f32_bits_to_f16(bitcast<u32>(v.y)) << 16u);
}

fn unpack_f16_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(f16_to_f32_bits(w & 0xffffu)), bitcast<f32>(f16_to_f32_bits(w >> 16u)));
}

fn pack_bf16_pair(v: vec2<f32>) -> u32 {
    return f32_bits_to_bf16(bitcast<u32>(v.x)) | (f32_bits_to_bf16(bitcast<u32>(v.y)) << 16u);
}

fn unpack_bf16_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(bf16_to_f32_bits(w & 0xffffu)), bitcast<f32>(bf16_to_f32_bits(w >> 16u)));
}

// ---- Reading packed tensors ----
//
// Storage dtype codes, shared by kernels that take an `override` for the
// dtype of a buffer bound as array<u32>:
const DTYPE_F32: u32 = 0u;
const DTYPE_F16: u32 = 1u;
const DTYPE_BF16: u32 = 2u;

// bf16 is the top half of an f32: widening shifts it back into place (exact).
fn bf16_lo(w: u32) -> f32 {
    return bitcast<f32>(w << 16u);
}

fn bf16_hi(w: u32) -> f32 {
    return bitcast<f32>(w & 0xffff0000u);
}

fn unpack_bf16x2(w: u32) -> vec2<f32> {
    return vec2<f32>(bf16_lo(w), bf16_hi(w));
}

fn unpack_f16x2(w: u32) -> vec2<f32> {
    return unpack_f16_pair(w);
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
