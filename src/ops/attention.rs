//! attention: not yet written.
