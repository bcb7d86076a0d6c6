//! Tests for entropy: not yet written.
