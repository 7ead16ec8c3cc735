//! The `imagespec` command line: parse arguments, call the library, map errors to exit codes.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A closed stdout (`imagespec inspect --json | head -1`) ends the process quietly, as it
    // ends `cat`, instead of a panic in `println!` (Rust ignores SIGPIPE by default).
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
