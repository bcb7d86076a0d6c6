//! Which directory a run writes into: the timestamped default, the run a
//! `--resume` continues, and the refusal to write into someone else's files.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{CHECKPOINT, STATE_FILE};
use crate::models::outputs::{refuse_non_empty_dir, same_path};

/// `./runs/<UTC timestamp>` (a suffix is added if that exists).
pub fn default_out_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = PathBuf::from("runs").join(utc_stamp(secs));
    let mut dir = base.clone();
    for i in 2.. {
        if !dir.exists() {
            break;
        }
        dir = PathBuf::from(format!("{}-{i}", base.display()));
    }
    dir
}

/// `YYYY-MM-DDTHH-MM-SSZ` (no colons: valid on every filesystem).
pub fn utc_stamp(unix_secs: u64) -> String {
    let (days, rem) = (unix_secs / 86_400, unix_secs % 86_400);
    let (y, m, d) = crate::data::jinja::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The run directory a `--resume PATH` continues when no --out is given:
/// PATH itself when it is a run directory, else (PATH is a checkpoint) the
/// run directory holding it. Never the directory recorded in the checkpoint,
/// so resuming a copied run writes into the copy.
pub fn resumed_run_dir(path: &Path) -> PathBuf {
    if path.join(STATE_FILE).is_file() {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    } else {
        path.to_path_buf()
    }
}

/// A resume continues its own directory (`resumed`); any other run must not
/// write into an `out` with files it did not make, unless `force`. A
/// directory holding a checkpoint is left to the session's own refusal
/// (which suggests --resume).
pub fn check_out_dir(out: &Path, resumed: Option<&Path>, force: bool) -> Result<()> {
    let resuming_here = resumed.is_some_and(|d| same_path(d, out));
    let holds_checkpoint = resumed.is_none() && out.join(CHECKPOINT).exists();
    if resuming_here || holds_checkpoint {
        return Ok(());
    }
    refuse_non_empty_dir(out, "--out", force)
}
