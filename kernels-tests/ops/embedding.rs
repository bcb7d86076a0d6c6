//! Tests for embedding: not yet written.
