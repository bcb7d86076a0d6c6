//! Per-step seeds. Every random draw of a PPO step (sampling, minibatch
//! shuffles, LoRA dropout) is seeded from the run seed, the step, what the
//! draw is for and its index, so a resumed run draws exactly what an
//! uninterrupted one would.

use crate::rng::Rng;

/// Salts of the per-step seeds.
pub(super) const SALT_GENERATE: u64 = 1;
pub(super) const SALT_SHUFFLE: u64 = 2;
pub(super) const SALT_DROPOUT: u64 = 3;

/// A seed that depends only on the run seed, the step and what it is for.
pub(super) fn derive_seed(seed: u64, step: u64, salt: u64, index: u64) -> u64 {
    let mut r = Rng::new(seed ^ step.wrapping_mul(0xA24B_AED4_963E_E407));
    let a = r.next_u64();
    Rng::new(a ^ salt.wrapping_mul(0x9FB2_1C65_1E98_DF25) ^ index.rotate_left(32)).next_u64()
}
