//! matmul: not yet written.
