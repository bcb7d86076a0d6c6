//! One read-back for several device tensors. Every read-back submits what is
//! recorded and blocks until the device is done, so the PPO step reads at as
//! few points as it can: where it needs values on the host, it copies every
//! tensor it needs there into one buffer on the device (buffer copies, exact)
//! and reads that once.

use anyhow::{ensure, Result};

use crate::tensor::{DType, Tensor};

/// The contents of the f32 `tensors`, in order, from one read-back.
pub(super) fn read_together(tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    for t in tensors {
        ensure!(
            t.dtype() == DType::F32,
            "read_together: a {} tensor",
            t.dtype().name()
        );
    }
    let (first, total) = match tensors {
        [] => return Ok(Vec::new()),
        [only] => return Ok(vec![only.to_vec()?]),
        [first, ..] => (first, tensors.iter().map(|t| t.numel()).sum::<usize>()),
    };
    let all = Tensor::empty(first.gpu(), &[total], DType::F32)?;
    let mut at = 0;
    for t in tensors {
        all.copy_elems_from(at, t, 0, t.numel())?;
        at += t.numel();
    }
    let host = all.to_vec()?;
    let mut at = 0;
    Ok(tensors
        .iter()
        .map(|t| {
            at += t.numel();
            host[at - t.numel()..at].to_vec()
        })
        .collect())
}
