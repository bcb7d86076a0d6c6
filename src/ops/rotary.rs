//! rotary: not yet written.
