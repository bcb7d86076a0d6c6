//! Tests for matmul: not yet written.
