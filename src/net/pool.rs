//! Buffers that belong to the shard, not to a connection.
//!
//! An idle connection holds no buffer: it waits for readiness, borrows a buffer for
//! the read, processes what came and gives it back. Only a partial frame left at the
//! end of a read is copied into the connection's own (normally empty) vector.
//! A shard keeps two pools: reads (sized for the workload's messages) and writes
//! (small, grown by the frames written into them), so ten thousand connections
//! closing or answering at once borrow a few hundred bytes each, not kilobytes.
//! The built-in server's shards keep the same two pools.
//!
//! Part of `net/`, below both sides: it must never import `shard/` or `server/`.

use std::cell::RefCell;

/// Read buffer size for the built-in server and for unknown traffic.
pub const BUF_SIZE: usize = 16 * 1024;
/// Starting capacity of a write buffer.
pub const WRITE_BUF: usize = 256;
/// Buffers kept for reuse per pool; more are freed.
const MAX_POOLED: usize = 256;

pub struct BufPool {
    /// Capacity of a fresh buffer.
    size: usize,
    /// Largest capacity worth keeping (grown buffers beyond it are freed).
    keep_max: usize,
    free: RefCell<Vec<Vec<u8>>>,
}

impl Default for BufPool {
    fn default() -> Self {
        BufPool::new(BUF_SIZE, 4 * BUF_SIZE)
    }
}

impl BufPool {
    pub fn new(size: usize, keep_max: usize) -> Self {
        BufPool {
            size,
            keep_max: keep_max.max(size),
            free: RefCell::new(Vec::new()),
        }
    }

    /// A pool for writes: small buffers that grow with what is written.
    pub fn for_writes() -> Self {
        BufPool::new(WRITE_BUF, 64 * 1024)
    }

    /// Capacity of a fresh buffer.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An empty buffer with at least `size()` capacity.
    #[inline]
    pub fn take(&self) -> Vec<u8> {
        match self.free.borrow_mut().pop() {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(self.size),
        }
    }

    /// Returns a buffer; oversized ones (grown for a large frame) are freed.
    #[inline]
    pub fn put(&self, b: Vec<u8>) {
        let cap = b.capacity();
        if cap >= self.size && cap <= self.keep_max {
            let mut f = self.free.borrow_mut();
            if f.len() < MAX_POOLED {
                f.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_big_ones_dropped() {
        let p = BufPool::default();
        let mut a = p.take();
        a.extend_from_slice(b"abc");
        let ptr = a.as_ptr();
        p.put(a);
        let b = p.take();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
        p.put(Vec::with_capacity(BUF_SIZE * 10));
        let c = p.take();
        assert_eq!(c.capacity(), BUF_SIZE);
    }

    #[test]
    fn write_buffers_start_small_and_keep_growth() {
        let p = BufPool::for_writes();
        let mut w = p.take();
        assert_eq!(w.capacity(), WRITE_BUF);
        w.extend_from_slice(&[0u8; 5000]);
        let cap = w.capacity();
        p.put(w);
        assert_eq!(p.take().capacity(), cap);
        // Smaller than a fresh buffer: not kept.
        p.put(Vec::with_capacity(8));
        assert_eq!(p.take().capacity(), WRITE_BUF);
    }
}
