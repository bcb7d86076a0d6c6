//! The op benchmarks, at GPT-2-small / Pythia-160m block sizes.

use super::Case;

pub fn cases(_quick: bool) -> Vec<Case> {
    Vec::new()
}
