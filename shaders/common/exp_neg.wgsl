// e^x for x ≤ 0 to about 1 ulp, the same on every backend: Cody-Waite
// reduction by ln 2 (split so n·LN2_HI is exact) and a degree-7 Taylor
// polynomial on |r| ≤ ln2/2 (truncation < 1e-8). Drivers' exp may be far
// less accurate (Vulkan allows 3 + 2|x| ulp), and the draws compare sums of
// these against the CPU sampler's f64 ones.
fn exp_neg(x: f32) -> f32 {
    if (x < -87.0) {
        return 0.0;
    }
    let n = round(x * 1.4426950408889634);
    let r = (x - n * 0.693145751953125) - n * 1.4286068203094173e-6;
    var q = 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    q = q * r + 1.0;
    q = q * r + 1.0;
    return ldexp(q, i32(n));
}

