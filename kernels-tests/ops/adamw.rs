//! Tests for adamw: not yet written.
