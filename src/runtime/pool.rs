//! Buffer pool: storage and readback buffers reused by size class instead of allocated per call.
//!
//! A buffer goes back to the pool when the last handle to it drops. Idle buffers are kept up to a
//! budget (bytes); past it they are released, and `trim` releases them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// STORAGE | COPY_SRC | COPY_DST: every tensor.
    Storage,
    /// MAP_READ | COPY_DST: staging for readback.
    Readback,
    /// UNIFORM | COPY_DST: the per-submit parameter ring.
    Uniform,
    /// QUERY_RESOLVE | COPY_SRC: timestamps resolved before their readback.
    Resolve,
}

impl BufferKind {
    fn usage(self) -> wgpu::BufferUsages {
        match self {
            BufferKind::Storage => {
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
            }
            BufferKind::Readback => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            BufferKind::Uniform => wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            BufferKind::Resolve => wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        }
    }
}

/// Rounds a size up to its class: at least 256 bytes, then steps of a quarter of a power of two
/// (at most 25 % slack), never past `max` when the exact size fits.
pub fn size_class(bytes: u64, max: u64) -> u64 {
    let b = bytes.max(256);
    let p = 63 - b.leading_zeros(); // floor(log2 b)
    let step = if p >= 2 { 1u64 << (p - 2) } else { 1 };
    let c = b.div_ceil(step) * step;
    if c > max {
        b.div_ceil(4) * 4
    } else {
        c
    }
}

#[derive(Default)]
struct Inner {
    free: HashMap<(BufferKind, u64), Vec<wgpu::Buffer>>,
    idle_bytes: u64,
    live_bytes: u64,
    budget: u64,
    allocations: u64,
    reuses: u64,
    /// Buffers destroyed so far (over the budget, or trimmed): the context's bind-group cache is
    /// emptied when this moves, so it never keeps a released buffer's memory.
    destroyed: u64,
}

/// Counters for `vcortex info` and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStats {
    pub idle_bytes: u64,
    pub live_bytes: u64,
    pub budget: u64,
    pub allocations: u64,
    pub reuses: u64,
}

pub struct Pool {
    inner: Arc<Mutex<Inner>>,
    max_buffer: u64,
}

/// A pooled buffer; returns to the pool when dropped.
pub struct PooledBuffer {
    buffer: wgpu::Buffer,
    kind: BufferKind,
    class: u64,
    pool: Weak<Mutex<Inner>>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    pub fn capacity(&self) -> u64 {
        self.class
    }
    pub(crate) fn kind(&self) -> BufferKind {
        self.kind
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let Ok(mut p) = pool.lock() else { return };
        p.live_bytes = p.live_bytes.saturating_sub(self.class);
        if p.idle_bytes + self.class <= p.budget {
            p.idle_bytes += self.class;
            p.free.entry((self.kind, self.class)).or_default().push(self.buffer.clone());
        } else {
            p.destroyed += 1;
            self.buffer.destroy();
        }
    }
}

impl Pool {
    pub fn new(max_buffer: u64, budget: u64) -> Self {
        let inner = Inner { budget, ..Default::default() };
        Pool { inner: Arc::new(Mutex::new(inner)), max_buffer }
    }

    /// A buffer of at least `bytes`, reused when one of its class is idle.
    /// The size class a request of `bytes` gets.
    pub(crate) fn class_of(&self, bytes: u64) -> u64 {
        size_class(bytes, self.max_buffer)
    }

    pub fn get(&self, device: &wgpu::Device, kind: BufferKind, bytes: u64) -> Arc<PooledBuffer> {
        let class = size_class(bytes, self.max_buffer);
        let mut p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        p.live_bytes += class;
        let reused = p.free.get_mut(&(kind, class)).and_then(|v| v.pop());
        let buffer = match reused {
            Some(b) => {
                p.idle_bytes -= class;
                p.reuses += 1;
                b
            }
            None => {
                p.allocations += 1;
                drop(p);
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("vcortex pooled"),
                    size: class,
                    usage: kind.usage(),
                    mapped_at_creation: false,
                })
            }
        };
        Arc::new(PooledBuffer { buffer, kind, class, pool: Arc::downgrade(&self.inner) })
    }

    /// How many buffers the pool has destroyed so far.
    pub(crate) fn destroyed(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).destroyed
    }

    /// Releases every idle buffer.
    pub fn trim(&self) {
        let mut p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut destroyed = 0;
        for (_, v) in p.free.drain() {
            for b in v {
                destroyed += 1;
                b.destroy();
            }
        }
        p.destroyed += destroyed;
        p.idle_bytes = 0;
    }

    /// Sets the idle-memory budget and releases buffers past it.
    pub fn set_budget(&self, budget: u64) {
        let mut p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        p.budget = budget;
        if p.idle_bytes > budget {
            drop(p);
            self.trim();
        }
    }

    pub fn stats(&self) -> PoolStats {
        let p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        PoolStats {
            idle_bytes: p.idle_bytes,
            live_bytes: p.live_bytes,
            budget: p.budget,
            allocations: p.allocations,
            reuses: p.reuses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_bound_the_slack() {
        assert_eq!(size_class(1, 1 << 30), 256);
        assert_eq!(size_class(256, 1 << 30), 256);
        assert_eq!(size_class(257, 1 << 30), 320);
        for b in [300u64, 1000, 4097, 123_456, 99_999_999] {
            let c = size_class(b, 1 << 40);
            assert!(c >= b && (c as f64) <= 1.25 * b as f64 + 4.0, "{b} -> {c}");
        }
        // Past the device's buffer limit the exact (4-aligned) size is used.
        assert_eq!(size_class(1001, 1020), 1004);
    }
}
