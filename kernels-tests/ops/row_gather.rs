//! Tests for row_gather: not yet written.
