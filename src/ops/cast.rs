//! cast: not yet written.
