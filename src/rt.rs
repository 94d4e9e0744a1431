//! One monoio runtime per shard thread, pinned to its core: placement is decided here
//! and nowhere else.
//!
//! io_uring is the driver of choice (socket operations are submitted to the ring and
//! reaped many per syscall); where the kernel or a container's seccomp profile
//! forbids it, or the ring cannot be allocated, the same code runs on monoio's epoll
//! driver, and the name of the driver that ran goes into the results.
//!
//! A leaf: imports only the vocabulary's `IoDriver`.

use crate::vocab::kinds::IoDriver;
use std::future::Future;

/// Submission queue size per shard ring.
const RING_ENTRIES: u32 = 4096;

/// Names of the drivers as reported.
pub const URING: &str = "io_uring";
pub const EPOLL: &str = "epoll";

/// Pins the calling thread to `core`. Returns false when the kernel refused.
pub fn pin_to_core(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// Builds a runtime with the timer enabled on the chosen driver and runs `make()`'s
/// future to completion on it. Returns the output and the driver's name.
pub fn block_on<F, Fut>(driver: IoDriver, make: F) -> Result<(Fut::Output, &'static str), String>
where
    F: FnOnce(&'static str) -> Fut,
    Fut: Future,
{
    if driver != IoDriver::Epoll {
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(RING_ENTRIES)
            .enable_timer()
            .build()
        {
            Ok(mut rt) => return Ok((rt.block_on(make(URING)), URING)),
            Err(e) if driver == IoDriver::Uring => {
                return Err(format!(
                    "io_uring is not available ({e}); run with --io-driver auto or epoll"
                ))
            }
            Err(_) => {}
        }
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .with_entries(RING_ENTRIES)
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot build the epoll runtime: {e}"))?;
    Ok((rt.block_on(make(EPOLL)), EPOLL))
}
