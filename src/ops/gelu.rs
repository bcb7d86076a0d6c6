//! gelu: not yet written.
