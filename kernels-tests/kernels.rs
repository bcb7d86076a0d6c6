//! Kernel tests: every op's forward and backward against an f64 CPU
//! reference, the tape against finite differences, and every shader through
//! naga's validator and all four backends' code generators.

mod common;
mod ops;
mod quant;
