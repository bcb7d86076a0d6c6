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

// x, or a zero of x's sign where x is subnormal (|x| < 2^-126). WGSL lets
// any operation flush subnormals, and GPUs commonly do; CPU adapters do not,
// and there a subnormal operand costs a microcode assist on every FMA that
// reads it (measured: a 256³ matmul 1.6 ms with normal inputs, 42 ms with
// subnormal ones, llvmpipe on a Xeon). Kernels whose outputs are exp() of an
// argument unbounded below (softmax probabilities and their gradients over a
// 50k vocabulary, most of them < 1e-38) flush them before the store, so that
// the matmuls reading them downstream run at full speed. A flushed value is
// below 1.2e-38 and changes no sum it joins with a normal term.
fn flush_subnormal(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    return select(x, bitcast<f32>(bits & 0x80000000u), (bits & 0x7f800000u) == 0u);
}
