//! Reading the TRL fixtures in `kernels-tests/fixtures/rl/`.

use serde_json::Value;

pub fn load(name: &str) -> Value {
    let path = format!(
        "{}/kernels-tests/fixtures/rl/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run kernels-tests/fixtures/make_rl_fixtures.py)"));
    serde_json::from_str(&text).unwrap()
}

fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        Value::Bool(b) => out.push(*b as u8 as f64),
        _ => panic!("not a number: {v}"),
    }
}

/// Any (nested) numeric array, flattened row-major.
pub fn f64s(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    flatten(v, &mut out);
    out
}

/// The fixture inputs are float32 values, so this is exact.
pub fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

pub fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

pub fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect()
}

/// Asserts a scalar to atol + rtol·|want|.
#[track_caller]
pub fn close(what: &str, got: f64, want: f64, atol: f64, rtol: f64) {
    assert!(
        (got - want).abs() <= atol + rtol * want.abs(),
        "{what}: got {got} want {want} (diff {:.3e})",
        (got - want).abs()
    );
}

/// Asserts an f32 result against the fixture's numbers `want` (any nesting)
/// to atol + rtol·|want| everywhere.
#[track_caller]
pub fn close_all(what: &str, got: &[f32], want: &Value, (atol, rtol): (f64, f64)) {
    crate::common::assert_close(what, got, &f64s(want), atol, rtol);
}
