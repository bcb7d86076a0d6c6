//! Tests for attention: not yet written.
