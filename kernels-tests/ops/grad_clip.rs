//! Tests for grad_clip: not yet written.
