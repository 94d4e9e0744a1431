//! The WebSocket protocol pieces wsherd drives over monoio's owned-buffer I/O.
//!
//! One file per protocol concern (as fastwebsockets does): `frame` (parse and build
//! frames, header codec from tungstenite), `mask` (RFC 6455 masking), `handshake`
//! (the HTTP upgrade, both sides). Nothing here does I/O or allocates per message:
//! the connection loops in `shard` and `server` own the buffers.
//!
//! Never imports the load (`shard/`) or the server (`server/`), which both use it.

pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
