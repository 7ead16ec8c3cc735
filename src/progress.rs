//! Progress of long work (build steps, pushes) and machine-readable output, in one place.
//!
//! Three modes, chosen once: a compact live view on a terminal (one spinner per running
//! step, finished steps as one line each, the failing step's log in full), plain lines
//! when stderr is not a terminal (CI logs), and `--json`: one JSON object per line on stdout
//! (`{"event": ...}`), the last one the result. Nothing secret goes through here: callers
//! pass step names and build output, never credentials.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
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
    /// A build step started.
    StepStarted { id: &'a str, name: &'a str },
    /// A build step finished (`cached`: taken from the build cache).
    StepDone {
        id: &'a str,
        name: &'a str,
        cached: bool,
        error: Option<&'a str>,
    },
    /// Output of a build step.
    Log { id: &'a str, text: &'a str },
    /// Push progress of a layer (`current`/`total` bytes when known).
    Push {
        status: &'a str,
        current: Option<i64>,
        total: Option<i64>,
    },
}

struct Step {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    log: Vec<String>,
}

/// The progress printer.
pub struct Progress {
    mode: Mode,
    /// When the printer was made: JSON events carry `elapsed` seconds since.
    created: Instant,
    multi: MultiProgress,
    steps: Mutex<HashMap<String, Step>>,
    /// The platform whose image is being made, when a build makes several (see
    /// [`Progress::platform_scope`]).
    platform: Mutex<Option<String>>,
}

/// While alive, every event names its platform; see [`Progress::platform_scope`].
pub struct PlatformScope<'a> {
    progress: &'a Progress,
}

impl Drop for PlatformScope<'_> {
    fn drop(&mut self) {
        *self.progress.platform.lock().expect("progress lock") = None;
    }
}

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
            mode,
            created: Instant::now(),
            multi: MultiProgress::new(),
            steps: Mutex::new(HashMap::new()),
            platform: Mutex::new(None),
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Until the returned scope is dropped, events are about `platform`'s image (one of
    /// several built one after the other): `--json` events carry `"platform"`, lines start
    /// with `[platform]`.
    pub fn platform_scope(&self, platform: &str) -> PlatformScope<'_> {
        *self.platform.lock().expect("progress lock") = Some(platform.to_string());
        PlatformScope { progress: self }
    }

    /// `text` with the platform in scope in front.
    fn tagged<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match &*self.platform.lock().expect("progress lock") {
            Some(p) => format!("[{p}] {text}").into(),
            None => text.into(),
        }
    }

    /// Writes one JSON line on stdout (in `Json` mode only).
    pub fn json(&self, mut value: Value) {
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

    fn line(&self, text: &str) {
        let text = &*self.tagged(text);
        match self.mode {
            Mode::Tty => self.multi.suspend(|| eprintln!("{text}")),
            Mode::Plain => eprintln!("{text}"),
            Mode::Json | Mode::Quiet => {}
        }
    }

    /// Removes what is still live on the terminal (steps that never reported an end).
    pub fn clear(&self) {
        let mut steps = self.steps.lock().expect("progress lock");
        for (_, step) in steps.drain() {
            if let Some(bar) = step.bar {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
    }

    /// Reports an event.
    pub fn event(&self, event: Event<'_>) {
        match event {
            Event::Info(text) => {
                self.json(json!({"event": "info", "message": text}));
                self.line(text);
            }
            Event::Warning(text) => {
                self.json(json!({"event": "warning", "message": text}));
                self.line(&format!("warning: {text}"));
            }
            Event::StepStarted { id, name } => {
                self.json(json!({"event": "step", "id": id, "name": name, "state": "started"}));
                let mut steps = self.steps.lock().expect("progress lock");
                if steps.contains_key(id) {
                    return;
                }
                let bar = (self.mode == Mode::Tty).then(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                            .expect("style"),
                    );
                    bar.set_message(short(&self.tagged(name), 90));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                if self.mode == Mode::Plain {
                    eprintln!("=> {}", self.tagged(name));
                }
                steps.insert(
                    id.to_string(),
                    Step {
                        name: name.to_string(),
                        bar,
                        started: Instant::now(),
                        log: Vec::new(),
                    },
                );
            }
            Event::StepDone {
                id,
                name,
                cached,
                error,
            } => {
                let step = self.steps.lock().expect("progress lock").remove(id);
                let elapsed = step
                    .as_ref()
                    .map_or(Duration::ZERO, |s| s.started.elapsed());
                self.json(json!({"event": "step", "id": id, "name": name, "state": if error.is_some() { "failed" } else { "done" }, "cached": cached, "seconds": elapsed.as_secs_f64(), "error": error}));
                if let Some(bar) = step.as_ref().and_then(|s| s.bar.clone()) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let mark = if error.is_some() {
                    "✗"
                } else if cached {
                    "·"
                } else {
                    "✓"
                };
                let when = if cached {
                    "cached".to_string()
                } else {
                    format!("{:.1}s", elapsed.as_secs_f64())
                };
                self.line(&format!("{mark} {} ({when})", short(name, 100)));
                if let (Some(err), Some(step)) = (error, step) {
                    if self.mode == Mode::Tty {
                        // The live view showed only the last line: on failure, all of it.
                        for l in &step.log {
                            self.line(&format!("  | {l}"));
                        }
                    }
                    self.line(&format!("  error: {err}"));
                }
            }
            Event::Log { id, text } => {
                self.json(json!({"event": "log", "id": id, "text": text}));
                let mut steps = self.steps.lock().expect("progress lock");
                let step = steps.get_mut(id);
                for l in text.lines().filter(|l| !l.trim().is_empty()) {
                    match (self.mode, &step) {
                        (Mode::Tty, Some(s)) => {
                            if let Some(bar) = &s.bar {
                                bar.set_message(format!(
                                    "{}  {}",
                                    short(&s.name, 60),
                                    short(l.trim(), 60)
                                ));
                            }
                        }
                        (Mode::Plain, _) => eprintln!("   | {l}"),
                        _ => {}
                    }
                }
                if let Some(s) = step {
                    s.log.extend(text.lines().map(str::to_string));
                }
            }
            Event::Push {
                status,
                current,
                total,
            } => {
                self.json(
                    json!({"event": "push", "status": status, "current": current, "total": total}),
                );
                if self.mode == Mode::Plain
                    && (status.starts_with("Pushed") || status.contains("exists"))
                {
                    eprintln!(
                        "   | {}",
                        if status.starts_with("Pushed") {
                            "layer pushed"
                        } else {
                            "layer already exists"
                        }
                    );
                }
            }
        }
    }
}

/// `text` cut to `max` characters with an ellipsis.
fn short(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}
