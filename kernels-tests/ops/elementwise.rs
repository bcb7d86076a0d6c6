//! Tests for elementwise: not yet written.
