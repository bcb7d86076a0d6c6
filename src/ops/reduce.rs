//! reduce: not yet written.
