//! Tests for reduce: not yet written.
