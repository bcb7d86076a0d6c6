//! `--report-to tensorboard,csv`: copies of the metrics log in the formats
//! other tools read, beside `metrics.jsonl` (always written).
//!
//! - `tensorboard`: `<out>/runs/events.out.tfevents.<secs>.engine`, the
//!   TFRecord stream of `Event` protos that `tensorboard --logdir <out>`
//!   reads: a `file_version` event, then one event per step holding a
//!   scalar per metric. A record is `len: u64 LE`, `masked_crc32c(len):
//!   u32 LE`, the bytes, `masked_crc32c(bytes): u32 LE`; CRC-32C is
//!   Castagnoli's polynomial, masked as TensorFlow's `crc32c::Mask`.
//!   `kernels-tests/fixtures/make_tfevents_fixture.py` writes the same
//!   events with TensorBoard's own writer; the test compares the bytes.
//! - `csv`: `<out>/metrics.csv`, a `step` column and one per metric in
//!   order of first appearance, empty where a step did not log one. A key
//!   first seen mid-run (eval) rewrites the file with the wider header.

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One `--report-to` destination.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ReportTo {
    Tensorboard,
    Csv,
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}

/// TensorFlow's masked CRC, stored in TFRecords.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One TFRecord around `data`.
pub fn tf_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field `field` holding `bytes`.
fn bytes_field(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// An `Event` proto: wall_time (1, double), step (2, int64), then either
/// file_version (3, string) or a summary (5) of simple_value scalars
/// (`Summary.value` (1) = `{tag (1), simple_value (2, float)}`).
pub fn event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    scalars: &[(&str, f32)],
) -> Vec<u8> {
    let mut out = vec![0x09];
    out.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        out.push(0x10);
        varint(step as u64, &mut out);
    }
    if let Some(v) = file_version {
        bytes_field(3, v.as_bytes(), &mut out);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, x) in scalars {
            let mut value = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut value);
            value.push(0x15);
            value.extend_from_slice(&x.to_le_bytes());
            bytes_field(1, &value, &mut summary);
        }
        bytes_field(5, &summary, &mut out);
    }
    out
}

/// The extra sinks of one run.
pub struct Reporters {
    tensorboard: Option<(PathBuf, std::fs::File)>,
    csv: Option<Csv>,
}

struct Csv {
    path: PathBuf,
    columns: Vec<String>,
    file: std::fs::File,
}

fn now() -> f64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    t.map_or(0.0, |d| d.as_secs_f64())
}

impl Reporters {
    /// Opens the sinks `to` asks for in `dir`; `rows` (the metrics log so
    /// far, on resume) are written into the CSV again. A resumed run's
    /// TensorBoard events go to a new file, as TensorBoard expects.
    pub fn open(dir: &Path, to: &[ReportTo], rows: &[Map<String, Value>]) -> Result<Reporters> {
        let mut r = Reporters {
            tensorboard: None,
            csv: None,
        };
        if to.contains(&ReportTo::Tensorboard) {
            let tb = dir.join("runs");
            std::fs::create_dir_all(&tb).with_context(|| format!("creating {}", tb.display()))?;
            let wall = now();
            let path = tb.join(format!("events.out.tfevents.{}.engine", wall as u64));
            let mut file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.write_all(&tf_record(&event(wall, 0, Some("brain.Event:2"), &[])))
                .with_context(|| format!("writing {}", path.display()))?;
            r.tensorboard = Some((path, file));
        }
        if to.contains(&ReportTo::Csv) {
            let path = dir.join("metrics.csv");
            let mut columns = Vec::new();
            for row in rows {
                add_columns(&mut columns, row);
            }
            let file = rewrite_csv(&path, &columns, rows)?;
            r.csv = Some(Csv {
                path,
                columns,
                file,
            });
        }
        Ok(r)
    }

    /// Adds one step's row (`step` first) to every sink.
    pub fn write(&mut self, row: &Map<String, Value>, rows: &[Map<String, Value>]) -> Result<()> {
        let step = row.get("step").and_then(Value::as_i64).unwrap_or(0);
        if let Some((path, file)) = &mut self.tensorboard {
            let scalars: Vec<(&str, f32)> = row
                .iter()
                .filter(|(k, _)| k.as_str() != "step")
                .filter_map(|(k, v)| Some((k.as_str(), v.as_f64()? as f32)))
                .collect();
            file.write_all(&tf_record(&event(now(), step, None, &scalars)))
                .and_then(|()| file.flush())
                .with_context(|| format!("appending step {step} to {}", path.display()))?;
        }
        if let Some(csv) = &mut self.csv {
            let before = csv.columns.len();
            add_columns(&mut csv.columns, row);
            if csv.columns.len() != before {
                csv.file = rewrite_csv(&csv.path, &csv.columns, rows)?;
            } else {
                csv.file
                    .write_all(csv_line(&csv.columns, row).as_bytes())
                    .with_context(|| format!("appending step {step} to {}", csv.path.display()))?;
            }
        }
        Ok(())
    }
}

fn add_columns(columns: &mut Vec<String>, row: &Map<String, Value>) {
    for k in row.keys() {
        if k != "step" && !columns.contains(k) {
            columns.push(k.clone());
        }
    }
}

fn csv_line(columns: &[String], row: &Map<String, Value>) -> String {
    let cell = |k: &str| match row.get(k) {
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let mut cells = vec![cell("step")];
    cells.extend(columns.iter().map(|c| cell(c)));
    cells.join(",") + "\n"
}

/// Writes `rows` under the header `step,<columns>` and opens the file to append.
fn rewrite_csv(
    path: &Path,
    columns: &[String],
    rows: &[Map<String, Value>],
) -> Result<std::fs::File> {
    for c in columns {
        if c.contains([',', '"', '\n']) {
            bail!("metric name `{c}` cannot be a CSV column");
        }
    }
    let mut text = std::iter::once("step")
        .chain(columns.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for row in rows {
        text += &csv_line(columns, row);
    }
    crate::models::checkpoint::write_atomic(path, text.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}
