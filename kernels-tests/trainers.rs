//! Trainer-math tests: the RLHF functions in `engine::rl` against values
//! worked out by hand, against TRL itself (the JSON fixtures made by
//! `kernels-tests/fixtures/make_rl_fixtures.py`), and every differentiable
//! loss against finite differences through the tape.

mod common;
mod demo;
mod rl;
mod train;
