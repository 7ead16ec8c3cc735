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

mod json;
mod plain;
mod state;
mod tty;

pub use state::{OUTPUT_STEP, bytes, count};
pub use tty::fit;

use json::JsonEvents;
use serde_json::Value;
use state::{Counts, Finished, Running, State, Transfer};
use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tty::TtyView;

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

/// The state, and the views: every event updates the state, then the mode's view shows
/// what changed.
struct Inner {
    mode: Mode,
    state: Mutex<State>,
    /// The live view (its `suspend` serves every mode); an image's own block of a view
    /// shared with the other images' ([`Progress::for_image`]).
    tty: TtyView,
    json: Arc<JsonEvents>,
    /// The image these events are about, when several build at once (`--jobs`).
    image: Option<String>,
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
        *self.progress.inner.platform.lock().expect("progress lock") = None;
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
            inner: Arc::new(Inner {
                mode,
                state: Mutex::new(State::default()),
                tty: TtyView::new(),
                json: Arc::new(JsonEvents::new()),
                image: None,
                platform: Mutex::new(None),
            }),
        }
    }

    /// A printer for the events of one image of several built at once (`--jobs`): its
    /// lines start with `[name]`, its `--json` events carry `"key": name`, and the live
    /// view gives it a block of its own (a header and its running steps), all on the same
    /// terminal and stdout as this one's.
    pub fn for_image(&self, name: &str) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                mode: self.inner.mode,
                state: Mutex::new(State::default()),
                tty: self.inner.tty.block(name),
                json: Arc::clone(&self.inner.json),
                image: Some(name.to_string()),
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
        if self.inner.mode == Mode::Json {
            crate::redact::json_strings(&mut value);
            let image = self.inner.image.as_deref();
            self.inner
                .json
                .write(value, self.inner.platform().as_deref(), image);
        }
    }

    /// Removes what is still live on the terminal (steps that never reported an end), and
    /// takes steps that were announced but never ran out of the header's count.
    pub fn clear(&self) {
        let mut state = self.inner.state.lock().expect("progress lock");
        let (ids, counts) = state.clear();
        if self.inner.mode == Mode::Tty {
            self.inner.tty.cleared(&ids, counts);
        }
    }

    /// Ends the live view of one image: its header stays on the terminal, saying how it
    /// ended; the next step starts a new view, counting from zero.
    pub fn finish(&self, ok: bool) {
        self.clear();
        let counts = self.inner.state.lock().expect("progress lock").reset();
        if self.inner.mode == Mode::Tty {
            self.inner.tty.end(counts, ok);
        }
    }

    /// Runs `f`, which prints, with the live view out of the way: its lines land above
    /// the view instead of being drawn over.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.inner.tty.suspend(f)
    }

    /// Reports an event. Its text never shows a URL's credentials (a failing install
    /// step's command line, a tool's message naming its index): see [`crate::redact`].
    pub fn event(&self, event: Event<'_>) {
        self.inner.event(&Shown::from(event));
    }

    /// `work` shown as the step `id` named `name`: started, then done with its error.
    pub async fn in_step<T, E: std::fmt::Display>(
        &self,
        id: &'static str,
        name: &str,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.event(Event::StepStarted {
            id,
            name,
            label: None,
        });
        let result = work.await;
        let error = result.as_ref().err().map(ToString::to_string);
        self.event(Event::StepDone {
            id,
            name,
            label: None,
            cached: false,
            error: error.as_deref(),
        });
        result
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
                inner.event(&Shown::Push(Push {
                    step: &step,
                    layer: Some(&item),
                    status: if sent >= total { done } else { busy },
                    current: Some(sent),
                    total: Some(total),
                }));
            }
        })
    }
}

impl Inner {
    fn platform(&self) -> Option<String> {
        self.platform.lock().expect("progress lock").clone()
    }

    /// What the lines start with: the image (of several at once) and the platform (of
    /// several made one after the other), as `[image platform]`.
    fn scope(&self) -> Option<String> {
        match (self.image.as_deref(), self.platform()) {
            (Some(image), Some(platform)) => Some(format!("{image} {platform}")),
            (Some(image), None) => Some(image.to_string()),
            (None, platform) => platform,
        }
    }

    /// Updates the state with `event`, then shows it in the mode's view.
    fn event(&self, event: &Shown<'_>) {
        let scope = self.scope();
        let scope = scope.as_deref();
        // Held while the view draws: events from several threads are shown in the order
        // they changed the state.
        let mut state = self.state.lock().expect("progress lock");
        let change = update(&mut state, event, scope, Instant::now());
        match self.mode {
            Mode::Tty => self.tty.show(event, &change, scope),
            Mode::Plain => plain::show(event, &change, scope),
            Mode::Json => {
                let platform = self.platform();
                let image = self.image.as_deref();
                self.json.show(event, &change, platform.as_deref(), image)
            }
            Mode::Quiet => {}
        }
    }
}

/// An event as the views show it: the texts a user reads with URL credentials cut out
/// ([`crate::redact`]), a step's label chosen (its name, when it has none).
enum Shown<'a> {
    Message {
        text: Cow<'a, str>,
        warning: bool,
    },
    Queued {
        id: &'a str,
    },
    Started {
        step: StepText<'a>,
    },
    Done {
        step: StepText<'a>,
        cached: bool,
        error: Option<Cow<'a, str>>,
    },
    Log {
        id: &'a str,
        text: Cow<'a, str>,
    },
    Push(Push<'a>),
}

/// A step's id, name and label.
struct StepText<'a> {
    id: &'a str,
    name: Cow<'a, str>,
    label: Cow<'a, str>,
}

/// Bytes of one layer pushed (see [`Event::Push`]).
struct Push<'a> {
    step: &'a str,
    layer: Option<&'a str>,
    status: &'a str,
    current: Option<u64>,
    total: Option<u64>,
}

impl<'a> From<Event<'a>> for Shown<'a> {
    fn from(event: Event<'a>) -> Shown<'a> {
        use crate::redact::url_credentials as cut;
        let step = |id, name: &'a str, label: Option<&'a str>| StepText {
            id,
            name: cut(name),
            label: cut(label.unwrap_or(name)),
        };
        match event {
            Event::Info(text) => Shown::Message {
                text: cut(text),
                warning: false,
            },
            Event::Warning(text) => Shown::Message {
                text: cut(text),
                warning: true,
            },
            Event::StepQueued { id } => Shown::Queued { id },
            Event::StepStarted { id, name, label } => Shown::Started {
                step: step(id, name, label),
            },
            Event::StepDone {
                id,
                name,
                label,
                cached,
                error,
            } => Shown::Done {
                step: step(id, name, label),
                cached,
                error: error.map(cut),
            },
            Event::Log { id, text } => Shown::Log {
                id,
                text: cut(text),
            },
            Event::Push {
                step,
                layer,
                status,
                current,
                total,
            } => Shown::Push(Push {
                step,
                layer,
                status,
                current,
                total,
            }),
        }
    }
}

/// What an event changed, for the views.
enum Change {
    /// Nothing a view draws from the state (a message, a step started twice, a push
    /// status that cannot be placed, output of a step not running).
    Nothing,
    /// A step was announced: the header's new count.
    Counted(Counts),
    /// A step started: the count, and its label as the live view shows it.
    Started(Counts, String),
    Finished(Finished),
    /// A running step's output: its line now.
    Output(Running),
    /// Bytes pushed by a running step.
    Transfer(Transfer),
}

/// The state update: what `event` (about `platform`'s image) changes at `now`.
fn update(state: &mut State, event: &Shown<'_>, platform: Option<&str>, now: Instant) -> Change {
    let change = match event {
        Shown::Message { .. } => None,
        Shown::Queued { id } => state.queue(id).map(Change::Counted),
        Shown::Started { step } => {
            let label = tagged(platform, &step.label).into_owned();
            state
                .start(step.id, label.clone(), now)
                .map(|counts| Change::Started(counts, label))
        }
        Shown::Done { step, .. } => {
            let label = tagged(platform, &step.label);
            Some(Change::Finished(state.finish(step.id, &label, now)))
        }
        Shown::Log { id, text } => state.output(id, text).map(Change::Output),
        Shown::Push(push) => state
            .push(
                push.step,
                push.layer,
                push.status,
                (push.current, push.total),
                now,
            )
            .map(Change::Transfer),
    };
    change.unwrap_or(Change::Nothing)
}

/// `text` with the platform in scope in front.
fn tagged<'t>(platform: Option<&str>, text: &'t str) -> Cow<'t, str> {
    match platform {
        Some(p) => format!("[{p}] {text}").into(),
        None => text.into(),
    }
}

/// An info or warning line: the platform in scope in front, a warning marked.
fn message_line(text: &str, warning: bool, platform: Option<&str>) -> String {
    let text = tagged(platform, text);
    if warning {
        let marker = console::style("warning:").yellow().for_stderr();
        format!("{marker} {text}")
    } else {
        text.into_owned()
    }
}

/// A finished step's line: its mark (failed, cached or done), its label with the platform
/// in front, and its time.
struct Ended<'a> {
    id: &'a str,
    mark: console::StyledObject<&'static str>,
    label: Cow<'a, str>,
    when: String,
    cached: bool,
}

impl<'a> Ended<'a> {
    /// The line of `event`, when it is a step that `finished`.
    fn of(event: &'a Shown<'_>, finished: &Finished, platform: Option<&str>) -> Option<Ended<'a>> {
        let Shown::Done {
            step,
            cached,
            error,
        } = event
        else {
            return None;
        };
        let mark = if error.is_some() {
            console::style("✗").red().bold()
        } else if *cached {
            console::style("·").blue()
        } else {
            console::style("✓").green()
        };
        Some(Ended {
            id: step.id,
            mark: mark.for_stderr(),
            label: tagged(platform, &step.label),
            when: finished.when(*cached),
            cached: *cached,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_of_several_has_its_own_steps_and_names_itself_before_the_platform() {
        let progress = Progress::with_mode(Mode::Quiet);
        let mid = progress.for_image("mid");
        assert_eq!(mid.mode(), Mode::Quiet);
        assert_eq!(mid.inner.scope().as_deref(), Some("mid"));
        {
            let _scope = mid.platform_scope("linux/arm64");
            assert_eq!(mid.inner.scope().as_deref(), Some("mid linux/arm64"));
        }
        assert_eq!(progress.inner.scope(), None);
        // Steps of one image are not the other's (BuildKit's ids may repeat).
        mid.event(Event::StepQueued { id: "a" });
        let counts = |p: &Progress| p.inner.state.lock().unwrap().counts().total;
        assert_eq!((counts(&mid), counts(&progress)), (1, 0));
    }

    #[test]
    fn the_header_counts_steps_once_each_and_again_when_an_id_comes_back() {
        let progress = Progress::with_mode(Mode::Quiet);
        let counts = || {
            let c = progress.inner.state.lock().unwrap().counts();
            (c.done, c.total)
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
        assert_eq!(state.transfer("append").0, (1000, 1000));
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
        let (sent, text) = state.transfer(OUTPUT_STEP);
        assert_eq!(sent, (3_000_000, 4_000_000));
        assert_eq!(text.as_deref(), Some("writing 3.0 MB / 4.0 MB"));
    }

    #[test]
    fn texts_are_redacted_and_a_label_defaults_to_the_name() {
        let shown = Shown::from(Event::StepDone {
            id: "3",
            name: "RUN pip install --index-url https://u:tok@host/simple x",
            label: None,
            cached: false,
            error: Some("fetching https://tok@host/simple failed"),
        });
        let Shown::Done { step, error, .. } = &shown else {
            panic!("a done step");
        };
        assert_eq!(
            step.name,
            "RUN pip install --index-url https://***@host/simple x"
        );
        assert_eq!(step.label, step.name);
        assert_eq!(
            error.as_deref(),
            Some("fetching https://***@host/simple failed")
        );
        let Shown::Message { text, warning } = Shown::from(Event::Warning("https://a@b/c")) else {
            panic!("a message");
        };
        assert_eq!((text.as_ref(), warning), ("https://***@b/c", true));
    }

    #[test]
    fn the_update_tags_labels_with_the_platform_and_says_what_changed() {
        let mut state = State::default();
        let now = Instant::now();
        let started = Shown::from(Event::StepStarted {
            id: "1",
            name: "RUN x",
            label: Some("install"),
        });
        let Change::Started(counts, label) = update(&mut state, &started, Some("linux/arm64"), now)
        else {
            panic!("a step started");
        };
        assert_eq!(
            (counts.done, counts.total, label.as_str()),
            (0, 1, "[linux/arm64] install")
        );
        assert!(matches!(
            update(&mut state, &started, Some("linux/arm64"), now),
            Change::Nothing
        ));
        let log = Shown::from(Event::Log {
            id: "1",
            text: "a\nb\n",
        });
        let Change::Output(running) = update(&mut state, &log, None, now) else {
            panic!("output of a running step");
        };
        assert_eq!(running.label, "[linux/arm64] install");
        let info = Shown::from(Event::Info("exists, skipped"));
        assert!(matches!(
            update(&mut state, &info, None, now),
            Change::Nothing
        ));
        assert_eq!(message_line("exists", false, Some("p")), "[p] exists");
        assert_eq!(tagged(None, "x"), "x");
    }
}
