//! GPU tensors: a shape and a storage dtype over a pooled device buffer.
//!
//! Storage is always contiguous and row-major. `F16` and `BF16` are packed two
//! per `u32` (element `2i` in the low half), which kernels read with
//! `unpack2x16float` or the bf16 helpers in `shaders/common/packed16.wgsl`;
//! neither needs the shader-f16 feature that the GL backend lacks.

use anyhow::{bail, ensure, Result};
use std::sync::Arc;

use crate::device::Gpu;

pub mod axpy;
use crate::kernel::Bind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// Token ids and labels (with -100 as TRL's ignore index).
    I32,
}

impl DType {
    /// Bytes needed for `numel` elements, rounded up to whole `u32` words.
    pub fn storage_bytes(self, numel: usize) -> u64 {
        match self {
            DType::F32 | DType::I32 => numel as u64 * 4,
            DType::F16 | DType::BF16 => numel.div_ceil(2) as u64 * 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
        }
    }
}

struct Storage {
    gpu: Arc<Gpu>,
    buf: Option<wgpu::Buffer>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.gpu.release(buf);
        }
    }
}

/// A contiguous tensor on the GPU. Cloning shares the storage.
#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    storage: Arc<Storage>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {})", self.shape, self.dtype.name())
    }
}

impl Tensor {
    /// An uninitialised tensor (contents are whatever the pooled buffer held).
    pub fn empty(gpu: &Arc<Gpu>, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let buf = gpu.alloc(dtype.storage_bytes(numel))?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            storage: Arc::new(Storage {
                gpu: gpu.clone(),
                buf: Some(buf),
            }),
        })
    }

    pub fn zeros(gpu: &Arc<Gpu>, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = Tensor::empty(gpu, shape, dtype)?;
        t.zero();
        Ok(t)
    }

    pub fn from_f32(gpu: &Arc<Gpu>, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        Tensor::from_host(gpu, shape, DType::F32, data)
    }

    pub fn from_i32(gpu: &Arc<Gpu>, shape: &[usize], data: &[i32]) -> Result<Tensor> {
        check_len(shape, data.len())?;
        let t = Tensor::empty(gpu, shape, DType::I32)?;
        gpu.upload(t.buffer(), 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    /// Uploads f32 host data, converting to `dtype` (f32, f16 or bf16).
    pub fn from_host(
        gpu: &Arc<Gpu>,
        shape: &[usize],
        dtype: DType,
        data: &[f32],
    ) -> Result<Tensor> {
        check_len(shape, data.len())?;
        let t = Tensor::empty(gpu, shape, dtype)?;
        gpu.upload(t.buffer(), 0, &encode(dtype, data)?);
        Ok(t)
    }

    /// A tensor of `value` everywhere (host-side fill; use for setup, not hot paths).
    pub fn full(gpu: &Arc<Gpu>, shape: &[usize], value: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        Tensor::from_f32(gpu, shape, &vec![value; n])
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the last dimension (1 for scalars).
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Product of all but the last dimension.
    pub fn rows(&self) -> usize {
        self.numel() / self.cols().max(1)
    }

    /// Bytes of the logical contents (the buffer may be larger).
    pub fn bytes(&self) -> u64 {
        self.dtype.storage_bytes(self.numel())
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.storage.gpu
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage
            .buf
            .as_ref()
            .expect("tensor storage already released")
    }

    /// True when both tensors share one buffer.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The same storage under another shape with the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        ensure!(
            n == self.numel(),
            "cannot reshape {:?} ({} elements) to {shape:?}",
            self.shape,
            self.numel()
        );
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: self.dtype,
            storage: self.storage.clone(),
        })
    }

    /// Binds the whole tensor at `binding`.
    pub fn bind(&self, binding: u32) -> Bind<'_> {
        Bind {
            binding,
            buffer: self.buffer(),
            offset: 0,
            size: self.bytes().max(4),
        }
    }

    /// Binds the 4-byte elements `[lo, hi)` at `binding`. The binding starts at
    /// the aligned offset at or below `lo`; the returned element count is how
    /// far past that start `lo` lies (pass it to the kernel as an offset). Ops
    /// use this to chunk tensors larger than one storage binding.
    pub fn bind_elems(&self, binding: u32, lo: usize, hi: usize) -> (Bind<'_>, u32) {
        debug_assert!(
            matches!(self.dtype, DType::F32 | DType::I32) && lo <= hi && hi <= self.numel()
        );
        let align = self.gpu().binding_alignment();
        let start = (lo as u64 * 4) / align * align;
        let end = (hi as u64 * 4).max(start + 4);
        let b = Bind {
            binding,
            buffer: self.buffer(),
            offset: start,
            size: end - start,
        };
        (b, (lo as u64 - start / 4) as u32)
    }

    /// Reads the tensor back as f32 (f16/bf16 are widened; i32 is converted).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.gpu().read(self.buffer(), 0, self.bytes())?;
        let n = self.numel();
        Ok(match self.dtype {
            DType::F32 => bytemuck::cast_slice::<u8, f32>(&bytes)[..n].to_vec(),
            DType::I32 => bytemuck::cast_slice::<u8, i32>(&bytes)[..n]
                .iter()
                .map(|&v| v as f32)
                .collect(),
            DType::F16 => bytemuck::cast_slice::<u8, half::f16>(&bytes)[..n]
                .iter()
                .map(|v| v.to_f32())
                .collect(),
            DType::BF16 => bytemuck::cast_slice::<u8, half::bf16>(&bytes)[..n]
                .iter()
                .map(|v| v.to_f32())
                .collect(),
        })
    }

    pub fn to_i32_vec(&self) -> Result<Vec<i32>> {
        ensure!(
            self.dtype == DType::I32,
            "to_i32_vec on a {} tensor",
            self.dtype.name()
        );
        let bytes = self.gpu().read(self.buffer(), 0, self.bytes())?;
        Ok(bytemuck::cast_slice::<u8, i32>(&bytes).to_vec())
    }

    /// A single-element tensor's value.
    pub fn item(&self) -> Result<f32> {
        ensure!(
            self.numel() == 1,
            "item() on a tensor of shape {:?}",
            self.shape
        );
        Ok(self.to_vec()?[0])
    }

    /// Overwrites the contents from host f32 data (converted to the dtype).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        check_len(&self.shape, data.len())?;
        self.gpu()
            .upload(self.buffer(), 0, &encode(self.dtype, data)?);
        Ok(())
    }

    /// Overwrites an i32 tensor's contents.
    pub fn write_i32(&self, data: &[i32]) -> Result<()> {
        ensure!(
            self.dtype == DType::I32,
            "write_i32 on a {} tensor",
            self.dtype.name()
        );
        check_len(&self.shape, data.len())?;
        self.gpu()
            .upload(self.buffer(), 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Sets every byte to zero (0.0 in every float dtype).
    pub fn zero(&self) {
        self.gpu()
            .clear(self.buffer(), 0, self.bytes().max(4).next_multiple_of(4));
    }

    /// Fills every 32-bit word with `bits`; tests poison outputs with NaN.
    pub fn fill_bits(&self, bits: u32) {
        let words = (self.bytes() / 4).max(1) as usize;
        self.gpu()
            .upload(self.buffer(), 0, bytemuck::cast_slice(&vec![bits; words]));
    }

    /// Fills with a quiet NaN so that unwritten outputs are caught.
    pub fn poison(&self) {
        self.fill_bits(0x7fc0_0000 | 0x0001_7f00);
    }

    /// A new tensor with the same contents.
    pub fn deep_copy(&self) -> Result<Tensor> {
        let t = Tensor::empty(self.gpu(), &self.shape, self.dtype)?;
        let size = self.bytes().max(4).next_multiple_of(4);
        self.gpu()
            .record(|enc| enc.copy_buffer_to_buffer(self.buffer(), 0, t.buffer(), 0, size));
        Ok(t)
    }

    /// Copies `n` elements of `src` starting at `src_off` into this tensor at
    /// `dst_off` (same dtype; 4-byte dtypes only). KV caches append with it.
    pub fn copy_elems_from(
        &self,
        dst_off: usize,
        src: &Tensor,
        src_off: usize,
        n: usize,
    ) -> Result<()> {
        if src.dtype != self.dtype || !matches!(self.dtype, DType::F32 | DType::I32) {
            bail!("copy_elems_from {:?} into {:?}", src, self);
        }
        if src_off + n > src.numel() || dst_off + n > self.numel() {
            bail!("copy_elems_from: range out of bounds ({src_off}+{n} of {:?}, {dst_off}+{n} of {:?})", src, self);
        }
        if n > 0 {
            self.gpu().record(|enc| {
                enc.copy_buffer_to_buffer(
                    src.buffer(),
                    src_off as u64 * 4,
                    self.buffer(),
                    dst_off as u64 * 4,
                    n as u64 * 4,
                )
            });
        }
        Ok(())
    }

    /// Copies `src`'s contents into this tensor (same dtype and element count).
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.dtype != self.dtype || src.numel() != self.numel() {
            bail!("copy_from {:?} into {:?}", src, self);
        }
        let size = self.bytes().max(4).next_multiple_of(4);
        self.gpu()
            .record(|enc| enc.copy_buffer_to_buffer(src.buffer(), 0, self.buffer(), 0, size));
        Ok(())
    }
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let n: usize = shape.iter().product();
    ensure!(
        n == len,
        "shape {shape:?} holds {n} elements but {len} were given"
    );
    Ok(())
}

/// Host encoding of f32 data into a storage dtype.
fn encode(dtype: DType, data: &[f32]) -> Result<Vec<u8>> {
    Ok(match dtype {
        DType::F32 => bytemuck::cast_slice(data).to_vec(),
        DType::F16 => data
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        DType::BF16 => data
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        DType::I32 => bail!("use from_i32 for integer tensors"),
    })
}
