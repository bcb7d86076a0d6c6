//! embedding: not yet written.
