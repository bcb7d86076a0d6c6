//! Tests for cross_entropy: not yet written.
