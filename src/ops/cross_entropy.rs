//! cross_entropy: not yet written.
