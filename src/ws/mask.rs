//! RFC 6455 masking: client-to-server payloads are XORed with a 4-byte key.
//!
//! tungstenite keeps its masking private, so this is our own, eight bytes at a time.
//! Keys come from a small per-shard generator: unpredictable enough for a load test,
//! and free of syscalls and locks on the hot path.
//!
//! A leaf: imports nothing of wsherd's.

/// XORs `buf` with `key` in place, starting at key offset 0.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    let k32 = u32::from_ne_bytes(key) as u64;
    let k64 = k32 | (k32 << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().unwrap()) ^ k64;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// xorshift64* generator for masking keys, one per shard or server connection set.
#[derive(Debug, Clone)]
pub struct MaskRng(u64);

impl MaskRng {
    pub fn new(seed: u64) -> Self {
        MaskRng(seed | 1)
    }

    /// Seeds from the clock and the thread, different for every shard.
    pub fn from_entropy(salt: u64) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        MaskRng::new(t ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    #[inline]
    pub fn next_key(&mut self) -> [u8; 4] {
        ((self.next_u64() >> 32) as u32).to_ne_bytes()
    }

    /// The generator's whole 64-bit output (a masking key is its upper half).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_rfc_definition() {
        for len in 0..40 {
            let orig: Vec<u8> = (0..len as u8).collect();
            let key = [0x37, 0xfa, 0x21, 0x3d];
            let mut m = orig.clone();
            apply_mask(&mut m, key);
            for (i, b) in m.iter().enumerate() {
                assert_eq!(*b, orig[i] ^ key[i % 4]);
            }
            apply_mask(&mut m, key);
            assert_eq!(m, orig);
        }
    }

    #[test]
    fn keys_vary() {
        let mut r = MaskRng::new(1);
        let a = r.next_key();
        let b = r.next_key();
        assert_ne!(a, b);
    }
}
