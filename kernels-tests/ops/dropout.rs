//! Tests for dropout: not yet written.
