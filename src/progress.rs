//! Progress of long work (build steps, pushes) and machine-readable output, in one place.
//!
//! Four modes, chosen once:
//! - `Tty`, a live view on a terminal, as `docker buildx build` draws it: a header
//!   `[+] Building 12.3s (8/10)` (steps done of the steps known so far), one spinner line
//!   per running step with its elapsed time and its last line of output (or, for a push,
//!   `pushing 45.2 MB / 120.0 MB`), and each finished step as one line above, marked
//!   `CACHED` when BuildKit took it from its cache. Every line is cut to the terminal's
//!   width (80 columns when the width is unknown), so nothing wraps and redraws stay clean.
//! - `Plain` (stderr is no terminal, or CI): one line per step start and end and every line
//!   of the steps' output, never cut: a CI log is read later, in a viewer that scrolls or
//!   wraps, and a cut line could hide the one word that says why a step failed.
//! - `Json` (`--json`): one JSON object per line on stdout (`{"event": ...}`), the last one
//!   the result. Step events carry `label` (what the views show, "install apt packages:
//!   git") and `name` (BuildKit's own name for the step, `[stage-1 2/12] RUN ...`).
//! - `Quiet`: nothing but errors.
//!
//! A failing step's output is shown once: `Plain` prints it as it comes, so the error at
//! the end only points at it ([`Progress::shows_step_output`]); the other modes leave its
//! tail to the error. Nothing secret goes through here: callers pass step names and build
//! output, never credentials.

use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tty,
    Plain,
    Json,
    Quiet,
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A one-line statement for the user ("exists, skipped").
    Info(&'a str),
    /// Something the user should act on that does not stop the build (`warning: ...`).
    Warning(&'a str),
    /// A build step that will run (BuildKit announces a build's steps before it runs
    /// them): counted in the live view's header, not shown.
    StepQueued { id: &'a str },
    /// A build step started. `name`: the builder's own name for it; `label`: what a person
    /// reads, when it differs.
    StepStarted {
        id: &'a str,
        name: &'a str,
        label: Option<&'a str>,
    },
    /// A build step finished (`cached`: taken from the build cache).
    StepDone {
        id: &'a str,
        name: &'a str,
        label: Option<&'a str>,
        cached: bool,
        error: Option<&'a str>,
    },
    /// Output of a build step.
    Log { id: &'a str, text: &'a str },
    /// Bytes of one layer (`layer`, when the pusher names it) pushed by step `step`:
    /// dockerd's push status, or our own upload's. `current`/`total` in bytes, when known.
    Push {
        step: &'a str,
        layer: Option<&'a str>,
        status: &'a str,
        current: Option<u64>,
        total: Option<u64>,
    },
}

/// Reports the bytes sent so far of one upload (see [`Progress::meter`]).
pub type Meter = Arc<dyn Fn(u64) + Send + Sync>;

/// The progress printer.
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    /// When the printer was made: JSON events carry `elapsed` seconds since.
    created: Instant,
    multi: MultiProgress,
    state: Mutex<State>,
    /// The platform whose image is being made, when a build makes several (see
    /// [`Progress::platform_scope`]).
    platform: Mutex<Option<String>>,
}

#[derive(Default)]
struct State {
    running: HashMap<String, Step>,
    /// Steps queued or running: a step id counts once in `total` while it is here (ids
    /// such as "push" come back for a later push, which counts again).
    live: HashSet<String>,
    total: usize,
    done: usize,
    header: Option<ProgressBar>,
    /// Bytes per step and layer: `(sent, size)`.
    transfers: HashMap<String, HashMap<String, (u64, Option<u64>)>>,
}

struct Step {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    /// The last line of output, shown beside a running step in the live view.
    last_line: Option<String>,
    /// When the plain view last printed this step's pushed bytes.
    bytes_said: Instant,
}

/// While alive, every event names its platform; see [`Progress::platform_scope`].
pub struct PlatformScope<'a> {
    progress: &'a Progress,
}

impl Drop for PlatformScope<'_> {
    fn drop(&mut self) {
        *self.progress.inner.platform.lock().expect("progress lock") = None;
    }
}

/// How often the plain view repeats a push's byte count (a CI log wants a sign of life on
/// a long push, not a line per megabyte).
const PLAIN_BYTES_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    /// A printer for `--json` (`json`), or a terminal/plain one depending on stderr.
    pub fn new(json: bool, quiet: bool) -> Progress {
        let mode = if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Mode::Tty
        } else {
            Mode::Plain
        };
        Progress::with_mode(mode)
    }

    /// A printer in a given mode.
    pub fn with_mode(mode: Mode) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                mode,
                created: Instant::now(),
                multi: MultiProgress::new(),
                state: Mutex::new(State::default()),
                platform: Mutex::new(None),
            }),
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Whether a step's output reaches the user as it comes (the plain view): an error
    /// then points at it instead of repeating it.
    pub fn shows_step_output(&self) -> bool {
        self.inner.mode == Mode::Plain
    }

    /// Until the returned scope is dropped, events are about `platform`'s image (one of
    /// several built one after the other): `--json` events carry `"platform"`, lines start
    /// with `[platform]`.
    pub fn platform_scope(&self, platform: &str) -> PlatformScope<'_> {
        *self.inner.platform.lock().expect("progress lock") = Some(platform.to_string());
        PlatformScope { progress: self }
    }

    /// Writes one JSON line on stdout (in `Json` mode only), URL credentials cut out.
    pub fn json(&self, mut value: Value) {
        crate::redact::json_strings(&mut value);
        self.inner.json(value)
    }

    /// Removes what is still live on the terminal (steps that never reported an end), and
    /// takes steps that were announced but never ran out of the header's count.
    pub fn clear(&self) {
        let mut state = self.inner.state.lock().expect("progress lock");
        let state = &mut *state;
        for (id, step) in state.running.drain() {
            state.live.remove(&id);
            if let Some(bar) = step.bar {
                bar.finish_and_clear();
                self.inner.multi.remove(&bar);
            }
        }
        state.total -= state.live.len();
        state.live.clear();
        self.inner.update_header(state);
    }

    /// Ends the live view of one image: its header stays on the terminal, saying how it
    /// ended; the next step starts a new view, counting from zero.
    pub fn finish(&self, ok: bool) {
        self.clear();
        let mut state = self.inner.state.lock().expect("progress lock");
        let (done, total) = (state.done, state.total);
        (state.done, state.total) = (0, 0);
        if let Some(header) = state.header.take() {
            let how = if ok {
                console::style("FINISHED").green().for_stderr()
            } else {
                console::style("FAILED").red().for_stderr()
            };
            // Printed as a line of its own: a finished bar is wiped by the next line
            // printed above the view.
            let seconds = header.elapsed().as_secs_f64();
            header.finish_and_clear();
            self.inner.multi.remove(&header);
            let prefix = console::style("[+]").blue().bold().for_stderr();
            let line = format!("{prefix} Building {seconds:.1}s ({done}/{total}) {how}");
            self.inner.multi.suspend(|| eprintln!("{line}"));
        }
    }

    /// Runs `f`, which prints, with the live view out of the way: its lines land above
    /// the view instead of being drawn over.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.inner.multi.suspend(f)
    }

    /// Reports an event. Its text never shows a URL's credentials (a failing install
    /// step's command line, a tool's message naming its index): see [`crate::redact`].
    pub fn event(&self, event: Event<'_>) {
        use crate::redact::url_credentials as cut;
        let inner = &self.inner;
        match event {
            Event::Info(text) => inner.event(Event::Info(&cut(text))),
            Event::Warning(text) => inner.event(Event::Warning(&cut(text))),
            Event::StepStarted { id, name, label } => inner.event(Event::StepStarted {
                id,
                name: &cut(name),
                label: label.map(cut).as_deref(),
            }),
            Event::StepDone {
                id,
                name,
                label,
                cached,
                error,
            } => inner.event(Event::StepDone {
                id,
                name: &cut(name),
                label: label.map(cut).as_deref(),
                cached,
                error: error.map(cut).as_deref(),
            }),
            Event::Log { id, text } => inner.event(Event::Log {
                id,
                text: &cut(text),
            }),
            Event::StepQueued { .. } | Event::Push { .. } => inner.event(event),
        }
    }

    /// A [`Meter`] for an upload of `total` bytes of `item` by step `step`: it reports
    /// [`Event::Push`] (every 2% of `total` and at the end: a JSON line per megabyte
    /// would drown the log).
    pub fn meter(&self, step: &str, item: &str, total: u64) -> Meter {
        self.meter_as(step, item, total, ("uploading", "uploaded"))
    }

    /// A [`Meter`] for `total` bytes of `item` written to disk by step `step` (`--output`'s
    /// blobs): as [`Progress::meter`], its statuses `writing` and `written`.
    pub fn write_meter(&self, step: &str, item: &str, total: u64) -> Meter {
        self.meter_as(step, item, total, ("writing", "written"))
    }

    fn meter_as(
        &self,
        step: &str,
        item: &str,
        total: u64,
        (busy, done): (&'static str, &'static str),
    ) -> Meter {
        let inner = Arc::clone(&self.inner);
        let (step, item) = (step.to_string(), item.to_string());
        let said = AtomicU64::new(u64::MAX);
        let every = (total / 50).max(1);
        Arc::new(move |sent: u64| {
            let last = said.load(Ordering::Relaxed);
            // A retried upload starts again at 0: that is news too.
            let news = last == u64::MAX || sent < last || sent - last >= every || sent >= total;
            if news && last != sent {
                said.store(sent, Ordering::Relaxed);
                inner.event(Event::Push {
                    step: &step,
                    layer: Some(&item),
                    status: if sent >= total { done } else { busy },
                    current: Some(sent),
                    total: Some(total),
                });
            }
        })
    }
}

impl Inner {
    /// `text` with the platform in scope in front.
    fn tagged<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match &*self.platform.lock().expect("progress lock") {
            Some(p) => format!("[{p}] {text}").into(),
            None => text.into(),
        }
    }

    fn json(&self, mut value: Value) {
        if self.mode == Mode::Json {
            if let Some(object) = value.as_object_mut() {
                let elapsed = (self.created.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
                object.insert("elapsed".into(), json!(elapsed));
                let platform = self.platform.lock().expect("progress lock").clone();
                if let (Some(p), Some("step" | "info" | "log" | "push" | "warning")) =
                    (platform, object.get("event").and_then(Value::as_str))
                {
                    object.insert("platform".into(), json!(p));
                }
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }

    /// A whole line on stderr, above the live view (uncut: a message is read whole).
    fn line(&self, text: &str) {
        match self.mode {
            Mode::Tty => self.multi.suspend(|| eprintln!("{text}")),
            Mode::Plain => eprintln!("{text}"),
            Mode::Json | Mode::Quiet => {}
        }
    }

    /// The header of the live view, made with the first step.
    fn header(&self, state: &mut State) {
        if self.mode != Mode::Tty || state.header.is_some() {
            return;
        }
        let style = ProgressStyle::with_template("{prefix} Building {secs} {msg}")
            .expect("header template")
            .with_key("secs", seconds);
        let header = self
            .multi
            .insert(0, ProgressBar::new_spinner().with_style(style));
        header.set_prefix(console::style("[+]").blue().bold().for_stderr().to_string());
        header.enable_steady_tick(Duration::from_millis(100));
        state.header = Some(header);
    }

    fn update_header(&self, state: &State) {
        if let Some(header) = &state.header {
            header.set_message(format!("({}/{})", state.done, state.total));
        }
    }

    /// The running step's line in the live view: its label, then what it is doing.
    fn redraw(
        &self,
        id: &str,
        step: &Step,
        transfer: Option<&HashMap<String, (u64, Option<u64>)>>,
    ) {
        let Some(bar) = &step.bar else { return };
        let mut text = step.label.clone();
        if let Some(bytes) = transfer.and_then(|t| transfer_text(id, t)) {
            text.push_str(&format!("  {}", console::style(bytes).cyan().for_stderr()));
        } else if let Some(line) = &step.last_line {
            text.push_str(&format!("  {}", console::style(line).dim().for_stderr()));
        }
        // The spinner, spaces and elapsed time take 12 columns (`{secs:>7}` and 5 more).
        bar.set_message(fit(&text, terminal_width().saturating_sub(12)));
    }

    fn event(&self, event: Event<'_>) {
        match event {
            Event::Info(text) => {
                self.json(json!({"event": "info", "message": text}));
                self.line(&self.tagged(text));
            }
            Event::Warning(text) => {
                self.json(json!({"event": "warning", "message": text}));
                let warning = console::style("warning:").yellow().for_stderr();
                self.line(&format!("{warning} {}", self.tagged(text)));
            }
            Event::StepQueued { id } => {
                let mut state = self.state.lock().expect("progress lock");
                if state.live.insert(id.to_string()) {
                    state.total += 1;
                    self.header(&mut state);
                    self.update_header(&state);
                }
            }
            Event::StepStarted { id, name, label } => {
                let label = label.unwrap_or(name);
                self.json(json!({
                    "event": "step", "id": id, "name": name, "label": label, "state": "started",
                }));
                let mut state = self.state.lock().expect("progress lock");
                if state.live.insert(id.to_string()) {
                    state.total += 1;
                }
                if state.running.contains_key(id) {
                    return;
                }
                self.header(&mut state);
                self.update_header(&state);
                let label = self.tagged(label).into_owned();
                let bar = (self.mode == Mode::Tty).then(|| {
                    let style =
                        ProgressStyle::with_template(" {spinner:.cyan} {wide_msg} {secs:>7}")
                            .expect("step template")
                            .with_key("secs", seconds);
                    let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                if self.mode == Mode::Plain {
                    eprintln!("=> {label}");
                }
                let step = Step {
                    label,
                    bar,
                    started: Instant::now(),
                    last_line: None,
                    bytes_said: Instant::now(),
                };
                self.redraw(id, &step, None);
                state.running.insert(id.to_string(), step);
            }
            Event::StepDone {
                id,
                name,
                label,
                cached,
                error,
            } => {
                let label = label.unwrap_or(name);
                let mut state = self.state.lock().expect("progress lock");
                let step = state.running.remove(id);
                if !state.live.remove(id) {
                    state.total += 1;
                }
                state.done += 1;
                let transfer = state.transfers.remove(id);
                self.header(&mut state);
                self.update_header(&state);
                drop(state);
                let elapsed = step
                    .as_ref()
                    .map_or(Duration::ZERO, |s| s.started.elapsed());
                let state = if error.is_some() { "failed" } else { "done" };
                self.json(json!({
                    "event": "step", "id": id, "name": name, "label": label, "state": state,
                    "cached": cached, "seconds": elapsed.as_secs_f64(), "error": error,
                }));
                if let Some(bar) = step.as_ref().and_then(|s| s.bar.clone()) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let mut when = if cached {
                    "CACHED".to_string()
                } else {
                    format!("{:.1}s", elapsed.as_secs_f64())
                };
                if let Some((sent, _)) = transfer.as_ref().map(bytes_of).filter(|(s, _)| *s > 0) {
                    when = format!("{} {when}", bytes(sent));
                }
                let mark = if error.is_some() {
                    console::style("✗").red().bold()
                } else if cached {
                    console::style("·").blue()
                } else {
                    console::style("✓").green()
                }
                .for_stderr();
                let label = self.tagged(label);
                // The error itself is said once, by the error that ends the build.
                match self.mode {
                    Mode::Tty => {
                        let when = if cached {
                            console::style(when).blue().for_stderr()
                        } else {
                            console::style(when).dim().for_stderr()
                        };
                        let line = finished_line(&mark.to_string(), &label, &when.to_string());
                        self.multi.suspend(|| eprintln!("{line}"));
                    }
                    Mode::Plain => eprintln!("{mark} {label} ({when})"),
                    Mode::Json | Mode::Quiet => {}
                }
            }
            Event::Log { id, text } => {
                self.json(json!({"event": "log", "id": id, "text": text}));
                let mut state = self.state.lock().expect("progress lock");
                let state = &mut *state;
                let step = state.running.get_mut(id);
                let tag = self.platform.lock().expect("progress lock").clone();
                let mut lines = text.lines().filter(|l| !l.trim().is_empty());
                match (self.mode, step) {
                    (Mode::Plain, _) => {
                        for l in lines {
                            match &tag {
                                Some(p) => eprintln!("[{p}]    | {l}"),
                                None => eprintln!("   | {l}"),
                            }
                        }
                    }
                    (Mode::Tty, Some(step)) => {
                        if let Some(last) = lines.next_back() {
                            step.last_line = Some(last.trim().to_string());
                            self.redraw(id, step, state.transfers.get(id));
                        }
                    }
                    _ => {}
                }
            }
            Event::Push {
                step: id,
                layer,
                status,
                current,
                total,
            } => {
                self.json(json!({
                    "event": "push", "step": id, "layer": layer, "status": status,
                    "current": current, "total": total,
                }));
                // A push whose layers are not named (dockerd's, through bollard) tells them
                // apart by size; its statuses without bytes cannot be placed.
                let layer = match (layer, current, total) {
                    (Some(layer), _, _) => layer.to_string(),
                    (None, Some(_), Some(total)) => format!("{total} bytes"),
                    _ => return,
                };
                let mut state = self.state.lock().expect("progress lock");
                let state = &mut *state;
                let layers = state.transfers.entry(id.to_string()).or_default();
                let entry = layers.entry(layer).or_insert((0, None));
                *entry = pushed(*entry, status, current, total);
                let Some(step) = state.running.get_mut(id) else {
                    return;
                };
                match self.mode {
                    Mode::Tty => self.redraw(id, step, state.transfers.get(id)),
                    Mode::Plain if step.bytes_said.elapsed() >= PLAIN_BYTES_EVERY => {
                        if let Some(text) =
                            state.transfers.get(id).and_then(|t| transfer_text(id, t))
                        {
                            step.bytes_said = Instant::now();
                            eprintln!("   | {text}");
                        }
                    }
                    _ => {}
                }
            }
        }
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

/// A layer's `(sent, size)` after a push status: dockerd's (`Pushing` with bytes, `Pushed`,
/// `Layer already exists`, `Mounted from ...`) or ours (`uploading`, `uploaded`).
fn pushed(
    (sent, size): (u64, Option<u64>),
    status: &str,
    current: Option<u64>,
    total: Option<u64>,
) -> (u64, Option<u64>) {
    let size = total.filter(|t| *t > 0).or(size);
    if status.starts_with("Pushed") || status == "uploaded" || status == "written" {
        (size.or(current).unwrap_or(sent), size)
    } else if status.contains("exists") || status.starts_with("Mounted") {
        // Nothing to send: neither sent nor to send.
        (0, Some(0))
    } else {
        (current.unwrap_or(sent), size)
    }
}

/// Bytes sent and to send over all layers of a step (layers of unknown size count only
/// what they sent).
fn bytes_of(layers: &HashMap<String, (u64, Option<u64>)>) -> (u64, u64) {
    layers.values().fold((0, 0), |(sent, size), (s, t)| {
        (sent + s, size + t.unwrap_or(*s).max(*s))
    })
}

/// `pushing 45.2 MB / 120.0 MB` (`writing …` for the output step, [`OUTPUT_STEP`]), once
/// some size is known.
fn transfer_text(step: &str, layers: &HashMap<String, (u64, Option<u64>)>) -> Option<String> {
    let (sent, size) = bytes_of(layers);
    let verb = if step == OUTPUT_STEP {
        "writing"
    } else {
        "pushing"
    };
    (size > 0).then(|| format!("{verb} {} / {}", bytes(sent), bytes(size)))
}

/// The id of the step that writes `--output` (its bytes are written, not pushed).
pub const OUTPUT_STEP: &str = "output";

/// A byte count in decimal units with one decimal, as registries and `docker images`
/// count: `532 B`, `45.2 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
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

    #[test]
    fn bytes_are_decimal_with_one_decimal() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(45_200_000), "45.2 MB");
        assert_eq!(bytes(120_000_000), "120.0 MB");
        assert_eq!(bytes(999_999_999), "1.0 GB");
        assert_eq!(bytes(3_500_000_000_000), "3.5 TB");
    }

    #[test]
    fn push_statuses_add_up_over_layers() {
        fn apply(
            layers: &mut HashMap<String, (u64, Option<u64>)>,
            layer: &str,
            status: &str,
            current: Option<u64>,
            total: Option<u64>,
        ) {
            let e = layers.entry(layer.to_string()).or_insert((0, None));
            *e = pushed(*e, status, current, total);
        }
        let mut layers = HashMap::new();
        let l = &mut layers;
        apply(l, "a", "Preparing", None, None);
        apply(l, "b", "Preparing", None, None);
        apply(l, "c", "Preparing", None, None);
        apply(l, "a", "Pushing", Some(20_000_000), Some(100_000_000));
        apply(l, "b", "Pushing", Some(5_000_000), Some(20_000_000));
        apply(l, "c", "Layer already exists", None, None);
        assert_eq!(bytes_of(&layers), (25_000_000, 120_000_000));
        assert_eq!(
            transfer_text("push", &layers).as_deref(),
            Some("pushing 25.0 MB / 120.0 MB")
        );
        apply(&mut layers, "b", "Pushed", None, None);
        assert_eq!(bytes_of(&layers), (40_000_000, 120_000_000));
        apply(
            &mut layers,
            "a",
            "uploaded",
            Some(100_000_000),
            Some(100_000_000),
        );
        assert_eq!(bytes_of(&layers), (120_000_000, 120_000_000));
        // Layers of unknown size and nothing sent: no byte count to show.
        let mut unknown = HashMap::new();
        unknown.insert("x".to_string(), pushed((0, None), "Waiting", None, None));
        assert_eq!(transfer_text("push", &unknown), None);
    }

    #[test]
    fn the_header_counts_steps_once_each_and_again_when_an_id_comes_back() {
        let progress = Progress::with_mode(Mode::Quiet);
        let counts = || {
            let s = progress.inner.state.lock().unwrap();
            (s.done, s.total)
        };
        progress.event(Event::StepQueued { id: "a" });
        progress.event(Event::StepQueued { id: "b" });
        progress.event(Event::StepQueued { id: "a" });
        assert_eq!(counts(), (0, 2));
        let started = |id| Event::StepStarted {
            id,
            name: id,
            label: None,
        };
        let done = |id, cached| Event::StepDone {
            id,
            name: id,
            label: None,
            cached,
            error: None,
        };
        progress.event(started("a"));
        progress.event(done("a", false));
        progress.event(done("b", true));
        assert_eq!(counts(), (2, 2));
        // A cached step never announced, and a second push under the same id.
        progress.event(done("c", true));
        progress.event(started("push"));
        progress.event(done("push", false));
        progress.event(started("push"));
        assert_eq!(counts(), (4, 5));
        // Steps that never ran leave the count when the build ends; one that started
        // and never ended stays (the view ends "(4/5) FAILED").
        progress.event(Event::StepQueued { id: "never" });
        progress.clear();
        assert_eq!(counts(), (4, 5));
    }

    #[test]
    fn a_meter_reports_every_fiftieth_and_the_end() {
        let progress = Progress::with_mode(Mode::Quiet);
        progress.event(Event::StepStarted {
            id: "append",
            name: "push",
            label: None,
        });
        let meter = progress.meter("append", "sha256:l", 1000);
        for sent in (0..=1000).step_by(5) {
            meter(sent);
        }
        let state = progress.inner.state.lock().unwrap();
        assert_eq!(bytes_of(&state.transfers["append"]), (1000, 1000));
    }

    #[test]
    fn output_blobs_are_written_not_pushed() {
        let progress = Progress::with_mode(Mode::Quiet);
        progress.event(Event::StepStarted {
            id: OUTPUT_STEP,
            name: "write oci:out",
            label: None,
        });
        let (a, b) = (
            progress.write_meter(OUTPUT_STEP, "sha256:a", 3_000_000),
            progress.write_meter(OUTPUT_STEP, "sha256:b", 1_000_000),
        );
        a(0);
        b(0);
        a(3_000_000);
        let state = progress.inner.state.lock().unwrap();
        let layers = &state.transfers[OUTPUT_STEP];
        assert_eq!(bytes_of(layers), (3_000_000, 4_000_000));
        assert_eq!(
            transfer_text(OUTPUT_STEP, layers).as_deref(),
            Some("writing 3.0 MB / 4.0 MB")
        );
    }
}
