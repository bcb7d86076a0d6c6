//! Reading rows from JSONL or CSV files, gzip or not, into JSON objects, with
//! columns renamed and bad rows either failing the load or counted.

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use super::dataset::{Dataset, FileFormat, LoadOptions, LoadReport, Origin, Row, REPORTED_REASONS};
use super::fields::Fields;

/// Opens `path`, decompressing when it starts with the gzip magic bytes.
pub(crate) fn open(path: &Path) -> Result<(Box<dyn BufRead>, bool)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .with_context(|| format!("reading {}", path.display()))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    if gzip {
        // Multi-member: concatenated .gz files are one stream.
        let dec = flate2::bufread::MultiGzDecoder::new(reader);
        Ok((Box::new(BufReader::new(dec)), true))
    } else {
        Ok((Box::new(reader), false))
    }
}

/// Keeps rows, or fails / counts bad ones, for one load.
struct Collector<'a, T> {
    opts: &'a LoadOptions,
    file: Arc<Path>,
    rows: Vec<Row<T>>,
    report: LoadReport,
}

impl<T> Collector<'_, T> {
    fn full(&self) -> bool {
        self.opts.max_rows.is_some_and(|m| self.rows.len() >= m)
    }

    /// One row's outcome: Ok(Some) kept, Ok(None) unlabelled, Err bad.
    fn take(&mut self, line: usize, parsed: Result<Option<T>, String>) -> Result<()> {
        let origin = Origin {
            file: self.file.clone(),
            line,
        };
        match parsed {
            Ok(Some(record)) => self.rows.push(Row { origin, record }),
            Ok(None) => self.report.skipped_unlabelled += 1,
            Err(why) if self.opts.skip_bad_rows => {
                self.report.skipped_bad += 1;
                if self.report.reasons.len() < REPORTED_REASONS {
                    self.report.reasons.push(format!("{origin}: {why}"));
                }
            }
            Err(why) => bail!("{origin}: {why}"),
        }
        Ok(())
    }
}

/// Reads every row of `path` and parses it with `parse`.
pub(crate) fn load<T>(
    path: &Path,
    opts: &LoadOptions,
    parse: impl Fn(&Fields) -> Result<Option<T>, String>,
) -> Result<Dataset<T>> {
    let (reader, gzip) = open(path)?;
    let mut c = Collector {
        opts,
        file: Arc::from(path),
        rows: Vec::new(),
        report: LoadReport {
            file: path.to_path_buf(),
            gzip,
            ..LoadReport::default()
        },
    };
    let format = opts.format.unwrap_or_else(|| FileFormat::from_path(path));
    match format {
        FileFormat::Jsonl => read_jsonl(reader, &mut c, &parse)?,
        FileFormat::Csv => read_csv(reader, b',', &mut c, &parse)?,
        FileFormat::Tsv => read_csv(reader, b'\t', &mut c, &parse)?,
    }
    c.report.kept = c.rows.len();
    if c.rows.is_empty() && c.report.skipped_bad > 0 {
        bail!(
            "{}",
            every_row_bad(&c.report.file, c.report.skipped_bad, &c.report.reasons)
        );
    }
    Ok(Dataset {
        rows: c.rows,
        report: c.report,
    })
}

/// The error for a file whose every row was skipped as bad: the count and
/// the first reasons, so `--skip-bad-rows` never hides why nothing is left.
pub(crate) fn every_row_bad(file: &Path, skipped: usize, reasons: &[String]) -> String {
    let mut msg = format!(
        "{}: all {skipped} rows are bad (skipped under --skip-bad-rows), nothing is left; the first:",
        file.display()
    );
    for r in reasons {
        msg.push_str("\n  ");
        msg.push_str(r);
    }
    msg
}

fn read_jsonl<T>(
    mut reader: Box<dyn BufRead>,
    c: &mut Collector<T>,
    parse: &impl Fn(&Fields) -> Result<Option<T>, String>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut line = 0;
    while !c.full() {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("{}:{}: reading", c.file.display(), line + 1))?;
        if n == 0 {
            break;
        }
        line += 1;
        if line == 1 && buf.starts_with(BOM) {
            buf.drain(..BOM.len());
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = json_object(&buf).and_then(|mut map| {
            c.opts.columns.apply(&mut map);
            parse(&Fields::new(map, &c.opts.columns, false, c.opts))
        });
        c.take(line, parsed)?;
    }
    Ok(())
}

/// A UTF-8 byte-order mark, which some editors put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not valid UTF-8: {e}"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "expected a JSON object, got {}",
            super::fields::kind(&other)
        )),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn read_csv<T>(
    reader: Box<dyn BufRead>,
    delimiter: u8,
    c: &mut Collector<T>,
    parse: &impl Fn(&Fields) -> Result<Option<T>, String>,
) -> Result<()> {
    let file = c.file.display().to_string();
    let newlines = Rc::new(RefCell::new(Vec::new()));
    let counting = NewlineIndex {
        inner: reader,
        offset: 0,
        newlines: newlines.clone(),
    };
    let line_at = |byte: u64| line_of(&newlines.borrow(), byte);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(counting);
    let header: Vec<String> = rdr
        .byte_headers()
        .with_context(|| format!("{file}:1: reading the CSV header"))?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h.strip_prefix(BOM).unwrap_or(h))
                .trim()
                .to_string()
        })
        .collect();
    for (field, column) in &c.opts.columns.0 {
        if !header.contains(column) {
            bail!(
                "{file}:1: no column {column:?} (mapped to {field:?}); the columns are {}",
                header.join(", ")
            );
        }
    }
    let mut record = csv::ByteRecord::new();
    while !c.full() {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| line_at(p.byte()));
                let parsed = csv_object(&header, &record).and_then(|mut map| {
                    c.opts.columns.apply(&mut map);
                    parse(&Fields::new(map, &c.opts.columns, true, c.opts))
                });
                c.take(line, parsed)?;
            }
            Err(e) => {
                // Wrong field counts are the row's fault; I/O errors are not.
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                match e.kind() {
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. } => {
                        c.take(line, Err(format!("bad CSV record: {e}")))?
                    }
                    _ => bail!("{file}:{line}: reading CSV: {e}"),
                }
            }
        }
    }
    Ok(())
}

/// Records the offset of every newline read, for line numbers: the csv
/// crate's own count lags by one after a CRLF line end.
struct NewlineIndex<R> {
    inner: R,
    offset: u64,
    newlines: Rc<RefCell<Vec<u64>>>,
}

impl<R: Read> Read for NewlineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut nl = self.newlines.borrow_mut();
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, &b)| b == b'\n') {
            nl.push(self.offset + i as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The 1-based line of a record starting at `byte`; a record reported at
/// the newline ending the previous line starts on the next one.
fn line_of(newlines: &[u64], byte: u64) -> usize {
    let before = newlines.partition_point(|&o| o < byte);
    let on_newline = newlines.get(before) == Some(&byte);
    before + on_newline as usize + 1
}

fn csv_object(header: &[String], record: &csv::ByteRecord) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for (name, cell) in header.iter().zip(record.iter()) {
        let text = std::str::from_utf8(cell)
            .map_err(|e| format!("column {name:?} is not valid UTF-8: {e}"))?;
        map.insert(name.clone(), Value::String(text.to_string()));
    }
    Ok(map)
}
