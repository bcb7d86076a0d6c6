//! Hugging Face safetensors checkpoints: read (single file or sharded through
//! `model.safetensors.index.json`) and write (atomically).
//!
//! Tensors are converted to f32 on the host as they are read; f32, f16 and
//! bf16 files are accepted. Every error names the file and, where there is
//! one, the tensor. A NaN or infinity in a tensor that is read is an error:
//! every command (generate, eval, trainers, export, adapters and value/reward
//! heads) loads through [`Checkpoint::get`], so none runs on poisoned weights.

use anyhow::{anyhow, bail, Context, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A tensor on the host, row-major f32.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: &[usize], data: Vec<f32>) -> HostTensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        HostTensor {
            shape: shape.to_vec(),
            data,
        }
    }

    /// The [rows, cols] transpose of a 2-D tensor.
    pub fn transposed(&self) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = self.data[i * c + j];
            }
        }
        HostTensor::new(&[c, r], out)
    }
}

/// One or more safetensors files of one model, opened and validated.
pub struct Checkpoint {
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Tensor name -> index into `files`.
    index: HashMap<String, usize>,
    /// Tensor name -> shape, from the headers (checked before any read).
    shapes: HashMap<String, Vec<usize>>,
}

impl Checkpoint {
    /// Opens `dir/model.safetensors`, or the shards listed by
    /// `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let mut shard_names: Vec<String> = Vec::new();
        if single.exists() {
            shard_names.push("model.safetensors".into());
        } else if index_path.exists() {
            let text = std::fs::read_to_string(&index_path)
                .with_context(|| format!("reading {}", index_path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", index_path.display()))?;
            let map = v["weight_map"]
                .as_object()
                .ok_or_else(|| anyhow!("{}: no `weight_map` object", index_path.display()))?;
            for file in map.values() {
                let f = file
                    .as_str()
                    .ok_or_else(|| anyhow!("{}: non-string shard name", index_path.display()))?;
                if !shard_names.iter().any(|s| s == f) {
                    shard_names.push(f.to_string());
                }
            }
        } else if dir.join("pytorch_model.bin").exists() {
            bail!(
                "{} holds only pytorch_model.bin; engine reads safetensors (in Python: \
                 `AutoModelForCausalLM.from_pretrained(d).save_pretrained(d, safe_serialization=True)`)",
                dir.display()
            );
        } else {
            bail!(
                "{}: no model.safetensors or model.safetensors.index.json",
                dir.display()
            );
        }
        Checkpoint::open_files(shard_names.iter().map(|n| dir.join(n)).collect())
    }

    /// Opens one named safetensors file (fixtures, adapters).
    pub fn open_file(path: &Path) -> Result<Checkpoint> {
        Checkpoint::open_files(vec![path.to_path_buf()])
    }

    fn open_files(paths: Vec<PathBuf>) -> Result<Checkpoint> {
        let mut files = Vec::new();
        let mut index = HashMap::new();
        let mut shapes = HashMap::new();
        for path in paths {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let st = SafeTensors::deserialize(&bytes)
                .map_err(|e| anyhow!("{} is not a valid safetensors file: {e}", path.display()))?;
            for (n, view) in st.tensors() {
                index.insert(n.clone(), files.len());
                shapes.insert(n, view.shape().to_vec());
            }
            files.push((path, bytes));
        }
        Ok(Checkpoint {
            files,
            index,
            shapes,
        })
    }

    /// Fails unless tensor `name` exists with `shape`, from the header alone
    /// (nothing is read or allocated).
    pub fn check_shape(&self, name: &str, shape: &[usize]) -> Result<()> {
        let Some(found) = self.shapes.get(name) else {
            bail!("{}: missing tensor `{name}`", self.describe());
        };
        if found != shape {
            let file = &self.files[self.index[name]].0;
            bail!(
                "{}: tensor `{name}` has shape {found:?}, expected {shape:?}",
                file.display()
            );
        }
        Ok(())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(|s| s.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The first of `names` that exists (for prefix variants such as
    /// `transformer.h.0...` vs `h.0...`).
    pub fn first_of<'a>(&self, names: &'a [String]) -> Option<&'a str> {
        names.iter().find(|n| self.contains(n)).map(|s| s.as_str())
    }

    /// Where the checkpoint came from, for error messages.
    pub fn describe(&self) -> String {
        self.files
            .iter()
            .map(|f| f.0.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads a tensor as f32.
    pub fn get(&self, name: &str) -> Result<HostTensor> {
        let &file = self
            .index
            .get(name)
            .ok_or_else(|| anyhow!("{}: missing tensor `{name}`", self.describe()))?;
        let (path, bytes) = &self.files[file];
        let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let view = st
            .tensor(name)
            .map_err(|e| anyhow!("{}: tensor `{name}`: {e}", path.display()))?;
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => bail!(
                "{}: tensor `{name}` has dtype {other:?}; engine reads f32, f16 and bf16",
                path.display()
            ),
        };
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: tensor `{name}` holds a non-finite value ({}) at flat index {i}; \
                 the checkpoint is corrupt or came from a diverged run",
                path.display(),
                data[i]
            );
        }
        Ok(HostTensor {
            shape: view.shape().to_vec(),
            data,
        })
    }

    /// Reads a tensor and checks its shape.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let t = self.get(name)?;
        if t.shape != shape {
            let file = &self.files[self.index[name]].0;
            bail!(
                "{}: tensor `{name}` has shape {:?}, expected {shape:?}",
                file.display(),
                t.shape
            );
        }
        Ok(t)
    }
}

/// Storage dtype of saved tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F16,
    BF16,
}

struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Refuses to write `tensors` to `path` as `dtype` when a value is NaN/Inf,
/// or would become Inf as float16 (|x| > 65504), naming the tensor. Every
/// save goes through [`save_safetensors`], so no model, adapter, head or
/// optimizer file is ever written with a non-finite value.
pub fn ensure_finite_to_save(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: SaveDtype,
) -> Result<()> {
    let limit = match dtype {
        SaveDtype::F16 => half::f16::MAX.to_f32(),
        SaveDtype::F32 | SaveDtype::BF16 => f32::MAX,
    };
    for (name, t) in tensors {
        if let Some((i, v)) = t
            .data
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_nan() || v.abs() > limit)
        {
            let why = if v.is_finite() {
                "does not fit float16 (max 65504)"
            } else {
                "is non-finite"
            };
            bail!(
                "refusing to write {}: tensor `{name}` holds {v} at index {i}, which {why}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Writes tensors as one safetensors file (with `{"format": "pt"}` metadata,
/// as transformers expects), atomically; never a non-finite value
/// ([`ensure_finite_to_save`]).
pub fn save_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: SaveDtype,
) -> Result<()> {
    ensure_finite_to_save(path, tensors, dtype)?;
    let owned: Vec<(String, Owned)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dt, bytes): (Dtype, Vec<u8>) = match dtype {
                SaveDtype::F32 => (
                    Dtype::F32,
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                SaveDtype::F16 => (
                    Dtype::F16,
                    t.data
                        .iter()
                        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
                SaveDtype::BF16 => (
                    Dtype::BF16,
                    t.data
                        .iter()
                        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
            };
            (
                name.clone(),
                Owned {
                    dtype: dt,
                    shape: t.shape.clone(),
                    bytes,
                },
            )
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(owned.iter().map(|(n, o)| (n.as_str(), o)), Some(meta))
        .map_err(|e| anyhow!("serialising {}: {e}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Writes a file through a temporary sibling and a rename, so a crash never
/// leaves a half-written checkpoint under the real name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // Errors name the real path (a full disk shows up while writing the
    // temporary); the temporary never outlives a failure.
    let written = std::fs::write(&tmp, bytes)
        .with_context(|| format!("writing {} (through {})", path.display(), tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
