//! dropout: not yet written.
