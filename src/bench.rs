//! Kernel benchmarks: not yet written.
use crate::device::Gpu;
use anyhow::Result;
use std::sync::Arc;

pub fn run(_gpu: &Arc<Gpu>, _quick: bool, _json: bool) -> Result<()> {
    anyhow::bail!("engine bench is not written yet")
}
