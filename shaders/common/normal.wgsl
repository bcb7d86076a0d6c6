// The standard normal CDF Φ and density φ in f32, for the exact (erf) GELU.
//
// WGSL has no erf. gelu(x) = x·Φ(x) with Φ(x) = 0.5·(1 + erf(x/√2)), and
// computing 1 + erf(...) for negative x cancels catastrophically, so Φ is
// evaluated directly, accurate to a few f32 ulps in the RELATIVE sense on the
// whole line (measured worst 2.5e-7 against an f64 reference, mostly from
// rounding of the inputs):
// - |x| < 1: the Taylor series Φ(x) = 0.5 + x·Σ a_n x^(2n),
//   a_n = (-1)^n / (√(2π)·2^n·n!·(2n+1)), truncated after n = 8 (next term
//   < 1.2e-10). Φ >= 0.159 here, so the 0.5 + ... sum loses nothing.
// - |x| >= 1: Φ(-u) = φ(u)·M(u) with the Mills ratio M. With t = 2/(2+u) in
//   (0, 2/3], M(u)/t is smooth (-> 1/2 as u -> ∞); it is a degree-11
//   Chebyshev interpolant in s = 3t - 1, fitted offline in f64 (truncation
//   error < 1e-9). Φ(u) = 1 - Φ(-u) for positive x.
// φ(x) = exp(-x²/2)/√(2π) splits x = hi + lo with hi holding 12 significant
// bits, so hi² is exact and x² is not rounded before the exponential (a
// rounding of x² by δ would be a relative error δ in the tail).

const INV_SQRT_2PI: f32 = 0.3989422804014327;

fn normal_pdf(x_in: f32) -> f32 {
    // Clamped so that ±inf gives 0 rather than inf - inf = NaN in `lo`.
    let x = clamp(x_in, -64.0, 64.0);
    let hi = bitcast<f32>(bitcast<u32>(x) & 0xFFFFF000u);
    let lo = x - hi;
    return INV_SQRT_2PI * exp(-0.5 * hi * hi) * exp(-0.5 * lo * (x + hi));
}

// Mills ratio M(u) = (1 - Φ(u)) / φ(u) for u >= 1.
fn mills_ratio(u: f32) -> f32 {
    let t = 2.0 / (2.0 + u);
    let s = 3.0 * t - 1.0;
    // Clenshaw recurrence for Σ c_j T_j(s), highest coefficient first.
    var b1 = 0.0;
    var b2 = 0.0;
    var b0 = -3.2684581430242332e-9 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = -5.6176803070462356e-9 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = 9.110226275218143e-8 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = -1.1418458397323879e-7 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = -2.1290970214545477e-6 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = 8.031728656099357e-6 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = 5.429055177198309e-5 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = -3.566827187432194e-4 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = -2.26916542447723e-3 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = 1.5893228013986727e-2 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0; b0 = 2.439765728551008e-1 + 2.0 * s * b1 - b2;
    b2 = b1; b1 = b0;
    // The constant term enters halved: c0/2 = 1.4524303979051911 / 2.
    return t * (0.72621519895259555 + s * b1 - b2);
}

// Φ(x) alone (the GELU forward): the density is only needed in the tails.
fn normal_cdf(x: f32) -> f32 {
    let ax = abs(x);
    if (ax < 1.0) {
        return 0.5 + x * normal_cdf_core_odd(x * x);
    }
    // Beyond |x| ~ 13.2 the density underflows and the tail is 0 (or 1).
    let tail = normal_pdf(x) * mills_ratio(ax);
    return select(1.0 - tail, tail, x < 0.0);
}

// vec2(Φ(x), φ(x)): the GELU backward needs both.
fn normal_cdf_pdf(x: f32) -> vec2<f32> {
    let pdf = normal_pdf(x);
    let ax = abs(x);
    if (ax < 1.0) {
        return vec2<f32>(0.5 + x * normal_cdf_core_odd(x * x), pdf);
    }
    let tail = pdf * mills_ratio(ax);
    return vec2<f32>(select(1.0 - tail, tail, x < 0.0), pdf);
}

// (Φ(x) - 1/2) / x as a polynomial in z = x², for |x| < 1 (Taylor series).
fn normal_cdf_core_odd(z: f32) -> f32 {
    var p = 2.273529824372807e-9;
    p = p * z - 4.122667414862689e-8;
    p = p * z + 6.659693516316652e-7;
    p = p * z - 9.444656259503615e-6;
    p = p * z + 1.154346876161553e-4;
    p = p * z - 1.1873282154804545e-3;
    p = p * z + 9.973557010035819e-3;
    p = p * z - 6.649038006690546e-2;
    p = p * z + 0.3989422804014327;
    return p;
}
