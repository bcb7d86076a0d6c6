//! Checks and read-backs of the math's inputs, shared by the host-side
//! rollout math and the tape losses.

use anyhow::{ensure, Result};

/// Rows of a `[B, T]` batch of `len` elements (errors unless `T > 0` divides it).
pub(crate) fn batch_rows(what: &str, len: usize, t: usize) -> Result<usize> {
    ensure!(
        t > 0 && len.is_multiple_of(t),
        "{what}: {len} elements are not a [B, {t}] batch"
    );
    Ok(len / t)
}

/// Reads a tensor back as f64 (for host-side statistics).
pub(crate) fn host(t: &crate::Tensor) -> Result<Vec<f64>> {
    Ok(t.to_vec()?.into_iter().map(f64::from).collect())
}
