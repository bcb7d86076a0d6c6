//! Runs the `engine` binary on a bad input in a fresh temporary directory and
//! checks what a user would see: the exit code, a message that names the
//! culprit (file, tensor, row or flag), and the run's peak memory.

pub use crate::scratch::{copy_dir, Scratch};
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Peak resident memory any single bad-input run may reach. A good run of the
/// tiny fixtures stays near 200 MB on llvmpipe; the unbounded cases this suite
/// guards against reached 0.9-2 GB.
pub const MAX_RSS_MB: u64 = 480;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_model(name: &str) -> PathBuf {
    root().join("models/fixtures").join(name)
}

pub fn fixture_data(name: &str) -> PathBuf {
    root().join("kernels-tests/fixtures/data").join(name)
}

/// What one run of the binary did.
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub max_rss_mb: u64,
}

impl Outcome {
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn describe(&self, args: &[OsString]) -> String {
        let stderr: String = self.stderr.chars().take(3000).collect();
        format!(
            "engine {}\nexit code {:?} (signal {:?}), peak RSS {} MB\n--- stderr ---\n{stderr}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            self.code,
            self.signal,
            self.max_rss_mb
        )
    }
}

/// Runs `engine args...` in `dir` with stdin closed; output goes to files so a
/// huge error message cannot block the pipe. The peak RSS comes from wait4.
pub fn run_in(dir: &Path, args: &[OsString]) -> Outcome {
    let out_path = dir.join(".stdout");
    let err_path = dir.join(".stderr");
    let child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawning the engine binary");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    std::mem::forget(child); // already reaped
    let status = std::process::ExitStatus::from_raw(status);
    let read = |p: &Path| {
        let bytes = std::fs::read(p).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Outcome {
        code: status.code(),
        signal: status.signal(),
        stdout: read(&out_path),
        stderr: read(&err_path),
        max_rss_mb: usage.ru_maxrss as u64 / 1024,
    }
}

pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The run must fail with exit code 1 (2 for a usage error caught by the
/// argument parser; never a panic's 101, never a signal),
/// say `error:`, name every one of `mentions` (case-insensitive) and stay
/// under [`MAX_RSS_MB`].
pub fn expect_error(dir: &Path, args: &[OsString], mentions: &[&str]) -> Outcome {
    let o = run_in(dir, args);
    let what = o.describe(args);
    assert!(
        matches!(o.code, Some(1 | 2)),
        "expected a clean failure (exit 1, or 2 for usage):\n{what}"
    );
    assert!(!o.stderr.contains("panicked"), "a panic:\n{what}");
    assert!(o.stderr.contains("error:"), "no `error:` line:\n{what}");
    let lower = o.stderr.to_lowercase();
    for m in mentions {
        assert!(
            lower.contains(&m.to_lowercase()),
            "the error does not mention `{m}`:\n{what}"
        );
    }
    assert!(
        o.stderr.len() < 20_000,
        "an error message of {} bytes:\n{what}",
        o.stderr.len()
    );
    assert!(
        o.max_rss_mb <= MAX_RSS_MB,
        "peak RSS {} MB > {MAX_RSS_MB} MB:\n{what}",
        o.max_rss_mb
    );
    o
}

/// The run must succeed, print every one of `mentions` (stdout or stderr) and
/// stay under [`MAX_RSS_MB`].
pub fn expect_success(dir: &Path, args: &[OsString], mentions: &[&str]) -> Outcome {
    let o = run_in(dir, args);
    let what = o.describe(args);
    assert_eq!(o.code, Some(0), "expected success:\n{what}");
    let lower = o.text().to_lowercase();
    for m in mentions {
        assert!(
            lower.contains(&m.to_lowercase()),
            "the output does not mention `{m}`:\n{what}"
        );
    }
    assert!(
        o.max_rss_mb <= MAX_RSS_MB,
        "peak RSS {} MB > {MAX_RSS_MB} MB:\n{what}",
        o.max_rss_mb
    );
    o
}

/// Edits `config.json` in a model directory.
pub fn edit_config(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The tensors of a safetensors file: name -> (dtype, shape, bytes).
pub type Tensors = HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>;

pub fn read_tensors(file: &Path) -> Tensors {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

pub fn write_tensors(file: &Path, tensors: &Tensors) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, (d, s, b))| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    std::fs::write(file, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

/// Rewrites one f32 tensor's values.
pub fn edit_f32(file: &Path, tensor: &str, f: impl FnOnce(&mut [f32])) {
    let mut t = read_tensors(file);
    let (dtype, _, bytes) = t
        .get_mut(tensor)
        .unwrap_or_else(|| panic!("no tensor {tensor}"));
    assert_eq!(*dtype, safetensors::Dtype::F32);
    let mut vals: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    f(&mut vals);
    *bytes = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_tensors(file, &t);
}

/// Every f32 value of every tensor in the file is finite.
pub fn all_finite(file: &Path) -> bool {
    read_tensors(file).values().all(|(d, _, b)| {
        *d != safetensors::Dtype::F32
            || b.chunks_exact(4)
                .all(|c| f32::from_le_bytes(c.try_into().unwrap()).is_finite())
    })
}

/// No file under `dir` holds a non-finite weight (every `*.safetensors`).
pub fn no_nonfinite_weights_under(dir: &Path) -> bool {
    if !dir.exists() {
        return true;
    }
    std::fs::read_dir(dir).unwrap().flatten().all(|e| {
        let p = e.path();
        if p.is_dir() {
            no_nonfinite_weights_under(&p)
        } else if p.extension().is_some_and(|x| x == "safetensors") {
            all_finite(&p)
        } else {
            true
        }
    })
}

/// Arguments with placeholders: `@model/NAME` is a fixture model directory,
/// `@data/NAME` a fixture data file, `@tmp/REL` a path in the scratch dir.
pub fn args(s: &Scratch, raw: &[&str]) -> Vec<OsString> {
    raw.iter()
        .map(|a| {
            if let Some(m) = a.strip_prefix("@model/") {
                fixture_model(m).into_os_string()
            } else if let Some(d) = a.strip_prefix("@data/") {
                fixture_data(d).into_os_string()
            } else if let Some(r) = a.strip_prefix("@tmp/") {
                s.path(r).into_os_string()
            } else {
                OsString::from(a)
            }
        })
        .collect()
}

/// [`args`] from one line of space-separated words (no word holds a space).
pub fn words(s: &Scratch, line: &str) -> Vec<OsString> {
    args(s, &self::line(line))
}

/// The words of `line`, as a slice for [`args`] or [`refused`].
pub fn line(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The words of `base` followed by `extra`.
pub fn line_with<'a>(base: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    line(base)
        .into_iter()
        .chain(extra.iter().copied())
        .collect()
}

/// One case: `raw` args (see [`args`]) must fail naming every `mentions`.
pub fn refused(case: &str, raw: &[&str], mentions: &[&str]) -> Outcome {
    let s = Scratch::new(case);
    expect_error(&s.0, &args(&s, raw), mentions)
}
