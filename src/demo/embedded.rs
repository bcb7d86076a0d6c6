//! The default models' files, built into the binary by build.rs when
//! `models/support-tiny/` existed at build time, and unpacked on first use
//! into a content-addressed folder under the system temp directory (the
//! loaders read model directories, and a second run reuses the folder).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/defaults.rs"));

/// The command that makes the defaults (then rebuild to embed them).
pub const MAKE_DEFAULTS: &str =
    "engine pipeline --preset support-tiny --out models/support-tiny (then rebuild: cargo build --release)";

/// Whether this binary carries the default models.
pub fn available() -> bool {
    !DEFAULT_FILES.is_empty()
}

/// FNV-1a over names and contents: names the unpacked folder, so a binary
/// with other defaults never reads a stale copy.
fn content_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in DEFAULT_FILES {
        for b in name.bytes().chain(bytes.iter().copied()).chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The folder holding the unpacked defaults (`policy/`, `reward/`, `data/`,
/// `demo.toml`), unpacking them if needed.
pub fn unpacked() -> Result<PathBuf> {
    if !available() {
        bail!(
            "this binary was built without the default models (models/{}/ was missing): run `{MAKE_DEFAULTS}`, \
             or pass --model DIR --data FILE --reward-model DIR",
            super::PRESET
        );
    }
    let dir =
        std::env::temp_dir().join(format!("engine-{}-{:016x}", super::PRESET, content_hash()));
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(dir);
    }
    // Unpack beside the target and rename into place: a concurrent or
    // interrupted run never sees a half-written folder.
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, bytes) in DEFAULT_FILES {
        write_file(&tmp.join(name), bytes)?;
    }
    write_file(&tmp.join(".complete"), b"")?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process won the race: use its copy.
        Err(_) if done.exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e).with_context(|| format!("unpacking the defaults into {}", dir.display())),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
