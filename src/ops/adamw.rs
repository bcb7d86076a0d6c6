//! adamw: not yet written.
