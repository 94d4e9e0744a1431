//! The `wsherd` binary: parse, dispatch, exit. Everything else is in the library.
//!
//! Imports only `commands`.

use mimalloc::MiMalloc;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    wsherd::commands::main()
}
