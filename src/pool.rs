//! Reusable device buffers: freed tensor storage is kept by size class and
//! handed to the next allocation of that class, so a training step does not
//! create and destroy hundreds of buffers.

use std::collections::HashMap;

/// Rounds a request up to a size class (powers of two and their 1.5×), so that
/// freed buffers are reused across slightly different shapes. Large buffers
/// round to whole MiB instead, to waste little memory on embeddings.
pub(crate) fn size_class(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    if bytes <= 256 {
        return 256;
    }
    if bytes > 64 * MIB {
        return bytes.next_multiple_of(MIB);
    }
    let p = bytes.next_power_of_two();
    if bytes <= p / 4 * 3 {
        p / 4 * 3
    } else {
        p
    }
}

/// Free buffers by capacity, capped so that a burst of temporaries does not
/// pin memory forever.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    bytes: u64,
}

const POOL_CAP: u64 = 1 << 30;

impl BufferPool {
    pub(crate) fn take(&mut self, cap: u64) -> Option<wgpu::Buffer> {
        let buf = self.free.get_mut(&cap)?.pop()?;
        self.bytes -= cap;
        Some(buf)
    }

    pub(crate) fn put(&mut self, buf: wgpu::Buffer) {
        let cap = buf.size();
        if self.bytes + cap <= POOL_CAP {
            self.bytes += cap;
            self.free.entry(cap).or_default().push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_cover_requests() {
        for b in [
            1u64,
            255,
            256,
            257,
            1000,
            4096,
            5000,
            1 << 20,
            (1 << 26) + 3,
            154_389_504,
        ] {
            let c = size_class(b);
            assert!(c >= b && c <= b.max(256) * 2, "{b} -> {c}");
        }
    }
}
