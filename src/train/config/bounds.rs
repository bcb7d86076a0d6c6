//! The ranges of float options, as clap value parsers: `#[arg(long,
//! value_parser = bounds::positive::<f32>)]`. A flag outside its range (NaN
//! and ±inf included) is a usage error naming the flag; a run-file value goes
//! through the same parser ([`super::run_file`]), so the range is declared
//! once, at the field.

use std::str::FromStr;

/// A float type an option holds.
pub trait Float: FromStr + Copy + Into<f64> {}
impl Float for f32 {}
impl Float for f64 {}

/// Parses `s` and checks it is finite and `ok`; `range` says what is
/// allowed (with a leading space).
fn parse<T: Float>(s: &str, ok: impl Fn(f64) -> bool, range: &str) -> Result<T, String> {
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    let x: f64 = v.into();
    if x.is_finite() && ok(x) {
        Ok(v)
    } else {
        Err(format!("must be a finite number{range} (got {s})"))
    }
}

/// Any finite number.
pub fn finite<T: Float>(s: &str) -> Result<T, String> {
    parse(s, |_| true, "")
}

/// > 0 (learning rates, β, temperatures, penalties, clip ranges).
pub fn positive<T: Float>(s: &str) -> Result<T, String> {
    parse(s, |x| x > 0.0, " > 0")
}

/// >= 0 (weight decay, norms, coefficients).
pub fn non_negative<T: Float>(s: &str) -> Result<T, String> {
    parse(s, |x| x >= 0.0, " >= 0")
}

/// In [0, 1) (dropout, held-out fractions).
pub fn fraction<T: Float>(s: &str) -> Result<T, String> {
    parse(s, |x| (0.0..1.0).contains(&x), " in [0, 1)")
}

/// In [0, 1] (rates that may be total).
pub fn unit<T: Float>(s: &str) -> Result<T, String> {
    parse(s, |x| (0.0..=1.0).contains(&x), " in [0, 1]")
}

/// In (0, 1] (top-p).
pub fn probability<T: Float>(s: &str) -> Result<T, String> {
    parse(s, |x| x > 0.0 && x <= 1.0, " in (0, 1]")
}

/// In [0, 0.5) (label smoothing: at 0.5 the labels carry no information).
pub fn below_half<T: Float>(s: &str) -> Result<T, String> {
    parse(s, |x| (0.0..0.5).contains(&x), " in [0, 0.5)")
}
