//! Tests for cast: not yet written.
