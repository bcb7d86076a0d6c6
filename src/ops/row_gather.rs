//! row_gather: not yet written.
