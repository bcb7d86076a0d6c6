//! Tests for layernorm: not yet written.
