//! layernorm: not yet written.
