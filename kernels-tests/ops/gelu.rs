//! Tests for gelu: not yet written.
