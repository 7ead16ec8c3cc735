//! The `imagespec` command line: parse arguments, call the library, map errors to exit codes.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// SIGPIPE: a closed stdout or stderr (`imagespec inspect --json | head -1`) ends the process
/// quietly, as it ends `cat`, instead of a panic in `println!` (Rust ignores SIGPIPE). A
/// closed socket must not: a registry or dockerd that goes away in the middle of a request
/// makes the write fail (EPIPE), and the request reports it with an exit code. The default
/// disposition cannot tell the two apart (hyper writes with `writev`, which has no
/// `MSG_NOSIGNAL`), so the handler asks whether stdout or stderr is the broken one.
extern "C" fn on_sigpipe(_: libc::c_int) {
    for fd in [1, 2] {
        let mut end = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: poll, signal and raise are async-signal-safe. A pipe whose reader is gone
        // polls POLLERR; re-raised with the default disposition, the signal ends the process
        // once the handler returns.
        unsafe {
            if libc::poll(&mut end, 1, 0) == 1 && end.revents & libc::POLLERR != 0 {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
                return;
            }
        }
    }
}

fn main() -> ExitCode {
    // SAFETY: installing a handler for one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, on_sigpipe as *const () as libc::sighandler_t);
    }
    let args = cli::args::Cli::parse();
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                // thiserror's transparent/format variants already print their cause inline.
                if !err.to_string().contains(&cause.to_string()) {
                    eprintln!("  caused by: {cause}");
                }
                source = cause.source();
            }
            ExitCode::from(err.exit_code() as u8)
        }
    }
}
