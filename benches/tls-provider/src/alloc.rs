//! Live heap bytes, two ways, for the memory of a held connection.
//!
//! - [`rust_live`]: what Rust code holds through the global allocator, counted by
//!   [`Counting`]. This misses what C code allocates for itself, and aws-lc (under
//!   aws-lc-rs) keeps its key schedules in memory it takes with `malloc`.
//! - [`malloc_live`]: glibc's own count of bytes in use (`mallinfo2`), which
//!   covers both, since Rust's system allocator is `malloc` too. It counts whole
//!   chunks (each allocation's header and rounding included): what the process pays.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// The system allocator, counting the bytes it has handed out and not had back.
///
/// The count is a load and a store, not an atomic add: the benchmark runs on one
/// thread, and a locked add on every allocation would tax the provider whose work
/// allocates through Rust (ring's does, aws-lc's mostly does not) for nothing.
/// Any other thread's allocations could be lost from the count, never the reverse.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn add(n: isize) {
    LIVE.store(LIVE.load(Relaxed) + n, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Bytes live through Rust's global allocator.
pub fn rust_live() -> isize {
    LIVE.load(Relaxed)
}

/// Bytes in use in glibc's heap: small chunks in the arenas plus mmap'd blocks.
pub fn malloc_live() -> isize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as isize
}
