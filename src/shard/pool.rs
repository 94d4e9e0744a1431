//! Buffers that belong to the shard, not to a connection.
//!
//! An idle connection holds no buffer: it waits for readiness, borrows a buffer for
//! the read, processes what came and gives it back. Only a partial frame left at the
//! end of a read is copied into the connection's own (normally empty) vector.

use std::cell::RefCell;

/// Default capacity of a pooled buffer.
pub const BUF_SIZE: usize = 16 * 1024;
/// Buffers kept for reuse; more are freed.
const MAX_POOLED: usize = 4096;

#[derive(Default)]
pub struct BufPool {
    free: RefCell<Vec<Vec<u8>>>,
}

impl BufPool {
    /// An empty buffer with at least `BUF_SIZE` capacity.
    #[inline]
    pub fn take(&self) -> Vec<u8> {
        match self.free.borrow_mut().pop() {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(BUF_SIZE),
        }
    }

    /// Returns a buffer; oversized ones (grown for a large frame) are freed.
    #[inline]
    pub fn put(&self, b: Vec<u8>) {
        if b.capacity() <= 4 * BUF_SIZE && b.capacity() >= BUF_SIZE {
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
}
