//! Tests for rotary: not yet written.
