//! Idle connections parked with no task of their own: one readiness wait per shard.
//!
//! An idle connection (`--workload idle` without a heartbeat) waits its whole life
//! for something the server may never send. As a task that wait costs the task
//! itself (640 bytes with monoio's header, the size of its largest phase) and a
//! readiness operation in the ring. Parked, it costs what it must keep: its
//! connection state and its socket, boxed, in this shard's slab, and one entry in
//! the shard's epoll set (kernel memory, not the process's).
//!
//! The shard's parker task waits for the epoll descriptor to become readable
//! (one io_uring poll for every parked connection), then takes the ready entries
//! out without waiting (`epoll_wait` with a zero timeout) and hands them back
//! to be resumed as tasks. A parked connection's stop slot is registered with the
//! parker's waker, so a stop (the end of the run, a ramp retiring the slot) wakes
//! the parker, which then hands back every entry whose slot stopped.
//!
//! Level-triggered: bytes that arrived before a connection was parked make it
//! ready at once, so nothing is missed between a resumed task's last read and
//! the next park.
//!
//! This is mechanism only: what it holds is opaque to it (`Box<dyn Any>`); which
//! connections park and how they resume is `conn`'s. Never imports the shard's
//! state or any other file of `shard/`: the shard's state holds it.

use crate::net::stop::StopSignal;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::{Poll, Waker};

/// Events taken from the epoll set per look.
const BATCH: usize = 256;

/// One parked connection: its socket, its stop slot, and what it holds.
struct Entry {
    fd: RawFd,
    slot: usize,
    held: Box<dyn Any>,
}

pub struct Parking {
    /// The epoll set of parked sockets (each keyed by its index in `slab`).
    ep: OwnedFd,
    /// The same descriptor as a monoio stream, to wait for it through the ring.
    watch: monoio::net::TcpStream,
    slab: RefCell<Vec<Option<Entry>>>,
    free: RefCell<Vec<usize>>,
    /// The parker task's waker, registered for every parked slot's stop.
    waker: RefCell<Option<Waker>>,
    /// The stop signal's epoch at the parker's last scan for stopped slots.
    seen_epoch: Cell<u64>,
    /// Connections parked now.
    parked: Cell<usize>,
}

impl Parking {
    /// An empty parking for this shard (inside its runtime), or None when the
    /// system refuses an epoll set (connections then wait as tasks).
    pub fn new() -> Option<Parking> {
        // SAFETY: epoll_create1 has no preconditions; the descriptor is owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        // monoio polls any pollable descriptor through the ring; an epoll set is
        // one. The stream owns a duplicate, closed when it drops.
        let dup = ep.try_clone().ok()?;
        // SAFETY: `dup` is ours; the std stream takes it over and is only used to
        // wait for readability (no socket call is made on it).
        let std =
            unsafe { std::net::TcpStream::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(dup)) };
        let watch = monoio::net::TcpStream::from_std(std).ok()?;
        Some(Parking {
            ep,
            watch,
            slab: RefCell::default(),
            free: RefCell::default(),
            waker: RefCell::default(),
            seen_epoch: Cell::new(0),
            parked: Cell::new(0),
        })
    }

    /// Connections parked now.
    pub fn parked(&self) -> usize {
        self.parked.get()
    }

    /// Parks `held` (a connection whose socket is `fd` and stop slot `slot`)
    /// until its socket is readable (or hung up) or its slot stops. Gives it
    /// back when it cannot park: the slot already stopped, the parker has not
    /// started, or the epoll set refused the socket.
    pub fn park(
        &self,
        stop: &StopSignal,
        fd: RawFd,
        slot: usize,
        held: Box<dyn Any>,
    ) -> Result<(), Box<dyn Any>> {
        let waker = self.waker.borrow().clone();
        let Some(waker) = waker else {
            return Err(held);
        };
        if stop.is_set_for(slot) {
            return Err(held);
        }
        let key = self.free.borrow_mut().pop().unwrap_or_else(|| {
            let mut slab = self.slab.borrow_mut();
            slab.push(None);
            slab.len() - 1
        });
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: key as u64,
        };
        // SAFETY: both descriptors are open (the socket is owned by `held`); the
        // event is a valid struct the kernel copies.
        let rc = unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc != 0 {
            self.free.borrow_mut().push(key);
            return Err(held);
        }
        self.slab.borrow_mut()[key] = Some(Entry { fd, slot, held });
        stop.register_waker(slot, &waker);
        self.parked.set(self.parked.get() + 1);
        Ok(())
    }

    /// Waits until at least one parked connection is ready (its socket readable
    /// or hung up) or its slot stopped, and moves every such one into `ready`
    /// (out of the epoll set). Runs only in the shard's parker task.
    pub async fn next(&self, stop: &StopSignal, ready: &mut Vec<Box<dyn Any>>) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            if stop.epoch() != self.seen_epoch.get() {
                self.seen_epoch.set(stop.epoch());
                self.take_stopped(stop, ready);
            }
            self.take_readable(&mut events, ready);
            if !ready.is_empty() {
                return;
            }
            let mut readable = std::pin::pin!(self.watch.readable(true));
            std::future::poll_fn(|cx| {
                let same = matches!(&*self.waker.borrow(), Some(w) if w.will_wake(cx.waker()));
                if !same {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                }
                if stop.epoch() != self.seen_epoch.get() {
                    return Poll::Ready(());
                }
                use std::future::Future;
                readable.as_mut().poll(cx).map(|_| ())
            })
            .await;
        }
    }

    /// Moves the entries whose sockets are ready into `ready`.
    fn take_readable(&self, events: &mut [libc::epoll_event], ready: &mut Vec<Box<dyn Any>>) {
        loop {
            // SAFETY: `events` is a valid buffer of `len` entries; zero timeout.
            let n = unsafe {
                libc::epoll_wait(
                    self.ep.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    0,
                )
            };
            if n <= 0 {
                return;
            }
            for ev in &events[..n as usize] {
                let key = ev.u64 as usize;
                if let Some(held) = self.take(key) {
                    ready.push(held);
                }
            }
            if (n as usize) < events.len() {
                return;
            }
        }
    }

    /// Moves the entries whose slots stopped into `ready`, and registers the
    /// parker's waker again for the others (a wake of every slot took it).
    fn take_stopped(&self, stop: &StopSignal, ready: &mut Vec<Box<dyn Any>>) {
        let waker = self.waker.borrow().clone();
        let len = self.slab.borrow().len();
        for key in 0..len {
            let slot = match &self.slab.borrow()[key] {
                Some(e) => e.slot,
                None => continue,
            };
            if stop.is_set_for(slot) {
                if let Some(held) = self.take(key) {
                    ready.push(held);
                }
            } else if let Some(w) = &waker {
                stop.register_waker(slot, w);
            }
        }
    }

    /// Takes entry `key` out of the slab and the epoll set.
    fn take(&self, key: usize) -> Option<Box<dyn Any>> {
        let entry = self.slab.borrow_mut().get_mut(key)?.take()?;
        // SAFETY: the socket is still open (owned by the entry's `held`); a null
        // event is allowed for EPOLL_CTL_DEL.
        unsafe {
            libc::epoll_ctl(
                self.ep.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                entry.fd,
                std::ptr::null_mut(),
            )
        };
        self.free.borrow_mut().push(key);
        self.parked.set(self.parked.get() - 1);
        Some(entry.held)
    }
}
