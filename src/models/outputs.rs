//! Guards for command outputs: nothing a user already has is overwritten by
//! surprise. A directory output (`export --out`, `init --out`, a trainer's
//! run directory) that exists and is not empty, and a file output that
//! exists, are refused unless the command was given `--force`. Writes
//! themselves go through [`super::checkpoint::write_atomic`].

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Refuses `dir` (given by `flag`, e.g. `--out`) when it is a file, or when
/// it exists and is not empty and `force` is false.
pub fn refuse_non_empty_dir(dir: &Path, flag: &str, force: bool) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        bail!("{flag} {}: exists and is not a directory", dir.display());
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot list it: {e}", dir.display()))?;
    if !force && entries.flatten().next().is_some() {
        bail!(
            "{flag} {}: exists and is not empty; pass --force to write into it \
             (files of the same name are replaced), or choose another {flag}",
            dir.display()
        );
    }
    Ok(())
}

/// Refuses to replace the file `path` (given by `flag`) unless `force`.
pub fn refuse_existing_file(path: &Path, flag: &str, force: bool) -> Result<()> {
    if path.is_dir() {
        bail!("{flag} {}: is a directory, not a file", path.display());
    }
    if path.exists() && !force {
        bail!(
            "{flag} {}: exists; pass --force to overwrite it, or choose another {flag}",
            path.display()
        );
    }
    Ok(())
}

/// Whether `a` and `b` name the same place once canonicalized (`m`,
/// `m/../m/.` and a symlink to `m` are all the same). A path that does not
/// exist is compared through its parent.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn canonical(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(p.file_name()?))
}
