//! grad_clip: not yet written.
