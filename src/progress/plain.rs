//! Plain lines on stderr (no terminal, or CI; see [`super`]): one line per step start and
//! end and every line of the steps' output, never cut.

use super::state::Transfer;
use super::{Change, Ended, Shown, message_line, tagged};

/// Shows `event`, which changed the state as `change` says; `platform`: the one in scope.
pub(super) fn show(event: &Shown<'_>, change: &Change, platform: Option<&str>) {
    match (event, change) {
        (Shown::Message { text, warning }, _) => {
            eprintln!("{}", message_line(text, *warning, platform));
        }
        (Shown::Started { .. }, Change::Started(_, label)) => eprintln!("=> {label}"),
        (_, Change::Finished(finished)) => {
            if let Some(ended) = Ended::of(event, finished, platform) {
                let Ended {
                    mark, label, when, ..
                } = ended;
                eprintln!("{mark} {label} ({when})");
            }
        }
        (Shown::Log { text, .. }, _) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("{}", tagged(platform, &format!("   | {line}")));
            }
        }
        (
            Shown::Push(_),
            Change::Transfer(Transfer {
                due: Some(bytes), ..
            }),
        ) => {
            eprintln!("   | {bytes}");
        }
        _ => {}
    }
}
