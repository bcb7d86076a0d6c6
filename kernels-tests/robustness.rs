//! Bad input, tried as a new user would: corrupt checkpoints, configs,
//! tokenizers, adapters and data files, absurd flags, outputs that would be
//! overwritten, runs that diverge. Every case runs the real binary in a fresh
//! temporary directory and asserts a clean failure (exit 1, never a panic), an
//! error naming the file and the tensor, row or flag, and bounded memory; or,
//! where the input is legal but suspicious, success with a warning.
//!
//! The classes follow the reliability issue: divergence and non-finite values,
//! flag and config validation, checkpoints that disagree with their config,
//! adapters, outputs that must not be overwritten, I/O errors, data rows.
//! `fuzz.rs` adds property tests over the parsers.

#[path = "common/scratch.rs"]
mod scratch;

#[path = "robustness/harness.rs"]
mod harness;

#[path = "robustness/adapters.rs"]
mod adapters;
#[path = "robustness/checkpoints.rs"]
mod checkpoints;
#[path = "robustness/classifiers.rs"]
mod classifiers;
#[path = "robustness/configs.rs"]
mod configs;
#[path = "robustness/data_rows.rs"]
mod data_rows;
#[path = "robustness/divergence.rs"]
mod divergence;
#[path = "robustness/flags.rs"]
mod flags;
#[path = "robustness/fuzz.rs"]
mod fuzz;
#[path = "robustness/outputs.rs"]
mod outputs;
