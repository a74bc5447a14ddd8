//! What the commands print on standard output, through one door.
//!
//! `println!` panics when standard output is a closed pipe (`vantus routes | head`), because
//! Rust ignores SIGPIPE and turns the write error into a panic. Every command prints with
//! [`say!`](crate::say) instead: a closed pipe means the reader has seen all it wants, so the
//! process ends quietly with success, like a Unix tool killed by SIGPIPE would, but without a
//! signal's exit status. Any other write error is reported in one sentence on standard error.
//! Clippy's `disallowed-macros` (clippy.toml) keeps `print!`/`println!` out of the crate.

use std::fmt;
use std::io::{self, Write};

/// Writes one line to standard output (see the module documentation).
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written.and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("vantus: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `println!` for commands: a closed pipe ends the command quietly.
#[macro_export]
macro_rules! say {
    () => { $crate::console::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::console::line(format_args!($($arg)*)) };
}
