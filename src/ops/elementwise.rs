//! elementwise: not yet written.
