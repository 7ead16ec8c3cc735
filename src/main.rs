//! The `imagespec` command line: parse arguments, call the library, map errors to exit codes.

/// `println!` for the whole binary: a closed stdout (`imagespec inspect --json | head -1`)
/// ends the process quietly with 141, as SIGPIPE ends `cat`, where std's `println!` panics.
/// SIGPIPE itself stays ignored (Rust's default): restored, it would also kill a build whose
/// registry closes a socket mid-upload, with no message and no clean-up.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(141);
            }
        }
    }};
}

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // No URL's credentials in a message (a failed install step's command line).
            use imagespec::redact::url_credentials as cut;
            let message = err.to_string();
            eprintln!("error: {}", cut(&message));
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                // thiserror's transparent/format variants already print their cause inline.
                let cause_text = cause.to_string();
                if !message.contains(&cause_text) {
                    eprintln!("  caused by: {}", cut(&cause_text));
                }
                source = cause.source();
            }
            ExitCode::from(err.exit_code() as u8)
        }
    }
}
