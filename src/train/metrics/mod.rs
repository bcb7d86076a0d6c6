//! Per-step metrics as JSON lines (`<out>/metrics.jsonl`), one object per
//! step with a `step` key and transformers'/TRL's metric names (`loss`,
//! `learning_rate`, `grad_norm`, `epoch`, `eval_*`, each trainer's own such
//! as `rewards/margins` or `objective/kl`), and the same rows to the
//! `--report-to` sinks ([`report_to`]: TensorBoard, CSV).
//!
//! Each row goes out as one write of one whole line; if it fails (a full
//! disk), the file is cut back to its last whole line, so a reader never sees
//! half a row, and the error names the file.

use anyhow::{Context, Result};
use serde_json::{Map, Value};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

pub mod report_to;

use self::report_to::{ReportTo, Reporters};

pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes of whole lines written so far (where a failed write is cut back to).
    len: u64,
    /// Every row written, kept for the end-of-run report and chart.
    pub rows: Vec<Map<String, Value>>,
    reporters: Option<Reporters>,
}

impl MetricsLog {
    /// Opens `<dir>/metrics.jsonl`; `append` keeps earlier rows (on resume).
    pub fn open(dir: &Path, append: bool) -> Result<MetricsLog> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("metrics.jsonl");
        let mut rows = Vec::new();
        if append && path.exists() {
            for line in std::fs::read_to_string(&path)?
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                if let Ok(Value::Object(m)) = serde_json::from_str(line) {
                    rows.push(m);
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        Ok(MetricsLog {
            path,
            file,
            len,
            rows,
            reporters: None,
        })
    }

    /// Also writes every row to `to` (the rows so far included, in the CSV).
    pub fn report_to(&mut self, to: &[ReportTo]) -> Result<()> {
        if !to.is_empty() {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            self.reporters = Some(Reporters::open(dir, to, &self.rows)?);
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one step's metrics (values that are not finite become null).
    pub fn write(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        let mut row = Map::new();
        row.insert("step".into(), Value::from(step));
        for (k, v) in metrics {
            row.insert(
                (*k).to_string(),
                serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
            );
        }
        let line = format!("{}\n", Value::Object(row.clone()));
        if let Err(e) = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
        {
            // Best effort: a device such as /dev/full cannot be cut back.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(std::io::SeekFrom::Start(self.len));
            return Err(anyhow::Error::new(e)
                .context(format!("appending step {step} to {}", self.path.display())));
        }
        self.len += line.len() as u64;
        self.rows.push(row);
        if let (Some(r), Some(row)) = (&mut self.reporters, self.rows.last()) {
            r.write(row, &self.rows)?;
        }
        Ok(())
    }

    /// The series of one metric over the steps that logged it.
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter_map(|r| Some((r.get("step")?.as_f64()?, r.get(key)?.as_f64()?)))
            .collect()
    }
}
