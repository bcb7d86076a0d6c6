//! Criterion benchmarks of the kernels (not yet written).
fn main() {}
