//! The timing header's fields (`Stamp`: connection id, sequence number, send and
//! intended send times) and the filler that pads a message after it.
//!
//! Both ways of writing a message share these: the fixed binary and text
//! encodings (`payload`) and rendered templates (`template`), which is why they
//! live below both. Imports nothing of wsherd's.

/// The timing header of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub conn: u32,
    pub seq: u64,
    /// Send time, ns since the run's clock origin.
    pub ts: u64,
    /// Intended send time (open loop's schedule), ns since the clock origin.
    pub intended: u64,
}

/// The filler, `abc…z` repeated, long enough to copy a 1 KiB stretch at a time.
static FILLER: [u8; 26 * 40] = {
    let mut f = [0u8; 26 * 40];
    let mut i = 0;
    while i < f.len() {
        f[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    f
};

/// Writes the filler over `out`: byte i is `b'a' + i % 26`.
#[inline]
pub fn fill(out: &mut [u8]) {
    // Every chunk starts at a multiple of 26, where the pattern starts again.
    for chunk in out.chunks_mut(FILLER.len()) {
        chunk.copy_from_slice(&FILLER[..chunk.len()]);
    }
}
