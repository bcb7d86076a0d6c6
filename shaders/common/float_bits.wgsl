// Float classes read from the bits. WGSL lets a compiler assume that floats
// are finite and never NaN, so `v == v` or `v >= -3.4e38` may fold to true
// (NVIDIA's does); these tests cannot be folded away.

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Neither infinite nor NaN.
fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn is_neg_inf(v: f32) -> bool {
    return bitcast<u32>(v) == 0xff800000u;
}
