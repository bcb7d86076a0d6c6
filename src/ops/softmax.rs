//! softmax: not yet written.
