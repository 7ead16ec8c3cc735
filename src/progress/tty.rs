//! The live view on a terminal, as `docker buildx build` draws it (see [`super`]): a header
//! with the count, a spinner line per running step, each finished step as a line above.

use super::state::{Activity, Counts, Running};
use super::{Change, Ended, Shown, message_line};
use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The bars of the live view.
pub(super) struct TtyView {
    multi: MultiProgress,
    bars: Mutex<Bars>,
    /// The image of this block, when several build at once ([`TtyView::block`]).
    name: Option<String>,
}

#[derive(Default)]
struct Bars {
    header: Option<ProgressBar>,
    /// Each running step's line, by step id.
    steps: HashMap<String, ProgressBar>,
}

impl TtyView {
    pub fn new() -> TtyView {
        TtyView {
            multi: MultiProgress::new(),
            bars: Mutex::new(Bars::default()),
            name: None,
        }
    }

    /// A block of this view for the image `name`: its own header (`[+] name Building`)
    /// and running steps under it, below the blocks already there.
    pub fn block(&self, name: &str) -> TtyView {
        TtyView {
            multi: self.multi.clone(),
            bars: Mutex::new(Bars::default()),
            name: Some(name.to_string()),
        }
    }

    /// `[+]`, and the image's name in a block.
    fn prefix(&self) -> String {
        let mark = console::style("[+]").blue().bold().for_stderr();
        match &self.name {
            Some(name) => format!("{mark} {}", console::style(name).bold().for_stderr()),
            None => mark.to_string(),
        }
    }

    /// Runs `f`, which prints, with the view out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// A whole line above the view (uncut: a message is read whole).
    pub fn line(&self, text: &str) {
        self.multi.suspend(|| eprintln!("{text}"));
    }

    /// The header says `counts`; it is made with the first step.
    pub fn count(&self, counts: Counts) {
        let mut bars = self.bars.lock().expect("progress lock");
        let header = bars.header.get_or_insert_with(|| {
            let style = ProgressStyle::with_template("{prefix} Building {secs} {msg}")
                .expect("header template")
                .with_key("secs", seconds);
            let bar = ProgressBar::new_spinner().with_style(style);
            // A block goes below the others; the one view is the whole view.
            let header = match self.name {
                Some(_) => self.multi.add(bar),
                None => self.multi.insert(0, bar),
            };
            header.set_prefix(self.prefix());
            header.enable_steady_tick(Duration::from_millis(100));
            header
        });
        header.set_message(format!("({}/{})", counts.done, counts.total));
    }

    /// Step `id` started: its spinner line.
    pub fn started(&self, id: &str, counts: Counts, label: &str) {
        self.count(counts);
        let style = ProgressStyle::with_template(" {spinner:.cyan} {wide_msg} {secs:>7}")
            .expect("step template")
            .with_key("secs", seconds);
        let bar = ProgressBar::new_spinner().with_style(style);
        let mut bars = self.bars.lock().expect("progress lock");
        // In a block, a step goes right under its image's header.
        let bar = match (&self.name, &bars.header) {
            (Some(_), Some(header)) => self.multi.insert_after(header, bar),
            _ => self.multi.add(bar),
        };
        bar.enable_steady_tick(Duration::from_millis(120));
        bars.steps.insert(id.to_string(), bar);
        drop(bars);
        self.redraw(
            id,
            &Running {
                label: label.to_string(),
                activity: None,
            },
        );
    }

    /// A running step's line: its label, then what it is doing.
    pub fn redraw(&self, id: &str, running: &Running) {
        let bars = self.bars.lock().expect("progress lock");
        let Some(bar) = bars.steps.get(id) else {
            return;
        };
        let mut text = running.label.clone();
        match &running.activity {
            Some(Activity::Bytes(bytes)) => {
                text.push_str(&format!("  {}", console::style(bytes).cyan().for_stderr()));
            }
            Some(Activity::Line(line)) => {
                text.push_str(&format!("  {}", console::style(line).dim().for_stderr()));
            }
            None => {}
        }
        // The spinner, spaces and elapsed time take 12 columns (`{secs:>7}` and 5 more).
        bar.set_message(fit(&text, terminal_width().saturating_sub(12)));
    }

    /// A step ended: its spinner goes, its line stays above.
    fn finished(&self, counts: Counts, ended: Ended<'_>) {
        self.count(counts);
        self.remove(ended.id);
        let when = if ended.cached {
            console::style(ended.when).blue().for_stderr()
        } else {
            console::style(ended.when).dim().for_stderr()
        };
        let line = finished_line(&ended.mark.to_string(), &ended.label, &when.to_string());
        self.multi.suspend(|| eprintln!("{line}"));
    }

    fn remove(&self, id: &str) {
        let bar = self.bars.lock().expect("progress lock").steps.remove(id);
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// The steps `ids` leave the view (they never reported an end); the header says
    /// `counts`, when there is one.
    pub fn cleared(&self, ids: &[String], counts: Counts) {
        for id in ids {
            self.remove(id);
        }
        let bars = self.bars.lock().expect("progress lock");
        if let Some(header) = &bars.header {
            header.set_message(format!("({}/{})", counts.done, counts.total));
        }
    }

    /// Ends the view of one image: its header stays, as a line saying how it ended.
    pub fn end(&self, counts: Counts, ok: bool) {
        let Some(header) = self.bars.lock().expect("progress lock").header.take() else {
            return;
        };
        let how = if ok {
            console::style("FINISHED").green().for_stderr()
        } else {
            console::style("FAILED").red().for_stderr()
        };
        // Printed as a line of its own: a finished bar is wiped by the next line printed
        // above the view.
        let seconds = header.elapsed().as_secs_f64();
        header.finish_and_clear();
        self.multi.remove(&header);
        let prefix = self.prefix();
        let (done, total) = (counts.done, counts.total);
        let line = format!("{prefix} Building {seconds:.1}s ({done}/{total}) {how}");
        self.multi.suspend(|| eprintln!("{line}"));
    }
}

/// A bar's elapsed time as `12.3s` (indicatif's own `{elapsed}` says `12s`).
fn seconds(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
}

/// The terminal's width in columns (stderr's), 80 when it is unknown.
fn terminal_width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, columns)| usize::from(columns))
}

/// `text` on one line, cut to `width` columns with an ellipsis (colours kept).
pub fn fit(text: &str, width: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    console::truncate_str(&one_line, width, "…").into_owned()
}

/// A finished step in the live view: ` ✓ label      12.3s`, the time at the right edge, the
/// whole line one column narrower than the terminal (`mark` is one column wide).
fn finished_line(mark: &str, label: &str, when: &str) -> String {
    finished_line_in(terminal_width(), mark, label, when)
}

fn finished_line_in(width: usize, mark: &str, label: &str, when: &str) -> String {
    let when_width = console::measure_text_width(when);
    // " ✓ " before the label, a space and the time after it, one column spare.
    let room = width.saturating_sub(when_width + 5);
    let label = fit(label, room);
    let pad = room.saturating_sub(console::measure_text_width(&label));
    format!(" {mark} {label}{} {when}", " ".repeat(pad))
}

impl TtyView {
    /// Shows `event`, which changed the state as `change` says; `platform`: the one in scope.
    pub(super) fn show(&self, event: &Shown<'_>, change: &Change, platform: Option<&str>) {
        match (event, change) {
            (Shown::Message { text, warning }, _) => {
                self.line(&message_line(text, *warning, platform));
            }
            (_, Change::Counted(counts)) => self.count(*counts),
            (Shown::Started { step }, Change::Started(counts, label)) => {
                self.started(step.id, *counts, label);
            }
            (_, Change::Finished(finished)) => {
                if let Some(ended) = Ended::of(event, finished, platform) {
                    self.finished(finished.counts, ended);
                }
            }
            (Shown::Log { id, .. }, Change::Output(running)) => self.redraw(id, running),
            (Shown::Push(push), Change::Transfer(transfer)) => {
                self.redraw(push.step, &transfer.running);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fit_cuts_to_the_width_with_an_ellipsis_and_keeps_short_text() {
        assert_eq!(
            fit("install apt packages: git", 80),
            "install apt packages: git"
        );
        let cut = fit("install apt packages: git curl wget", 20);
        assert_eq!(cut, "install apt package…");
        assert_eq!(console::measure_text_width(&cut), 20);
        assert_eq!(fit("two\nlines", 80), "two lines");
        // Wide characters count as two columns.
        assert_eq!(console::measure_text_width(&fit("日本語のテキスト", 7)), 7);
    }

    #[test]
    fn colour_codes_do_not_count_as_columns() {
        console::set_colors_enabled_stderr(true);
        let styled = format!("step {}", console::style("output").dim().for_stderr());
        assert!(styled.len() > 11);
        assert_eq!(fit(&styled, 80), styled);
        assert_eq!(console::measure_text_width(&fit(&styled, 8)), 8);
    }

    #[test]
    fn a_finished_line_is_narrower_than_the_terminal_and_keeps_its_time() {
        for width in [20, 40, 80, 200] {
            let line = finished_line_in(width, "✓", &"very long label ".repeat(20), "12.3s");
            assert_eq!(console::measure_text_width(&line), width - 1, "{line}");
            assert!(line.ends_with(" 12.3s"), "{line}");
            assert!(line.contains('…'), "{line}");
        }
        let line = finished_line_in(40, "·", "install Python packages (3)", "CACHED");
        assert!(
            line.starts_with(" · install Python packages (3)  "),
            "{line}"
        );
        assert!(line.ends_with(" CACHED"), "{line}");
        // A terminal narrower than the time: the label goes, nothing panics.
        assert_eq!(finished_line_in(3, "✓", "label", "12.3s"), " ✓ … 12.3s");
    }
}
