//! The exit codes of every command (docs/cli.md, *Exit codes*).

/// The exit codes of every command: the contract a CI script relies on (docs/cli.md, *Exit
/// codes*). `IMAGE=$(imagespec build spec.toml)` exits 0 only when the image exists as named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done: the image exists as named (found, built, pushed, written), or the answer is yes.
    Done = 0,
    /// Failed (a build, a push, a write, the machine), or the answer is no.
    Failed = 1,
    /// Bad input: the spec, a file it names, the command line. Nothing was tried.
    BadInput = 2,
    /// Cannot tell whether the image exists (registry unreachable, stalled, credentials
    /// refused): flytekit's `None`.
    CannotTell = 3,
}

impl ExitCode {
    /// The meaning of a number some part of the library returns (anything unknown is 1).
    pub fn from_code(code: i32) -> ExitCode {
        match code {
            0 => ExitCode::Done,
            2 => ExitCode::BadInput,
            3 => ExitCode::CannotTell,
            _ => ExitCode::Failed,
        }
    }
}
