//! entropy: not yet written.
