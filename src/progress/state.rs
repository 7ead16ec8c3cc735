//! What the progress views know, updated by each event: the steps announced and running,
//! the header's count, the bytes each step pushed. Pure: the views (`tty`, `plain`, `json`)
//! show what an update returns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Bytes per layer of one step: `(sent, size)`.
pub(super) type Layers = HashMap<String, (u64, Option<u64>)>;

/// How often the plain view repeats a push's byte count (a CI log wants a sign of life on
/// a long push, not a line per megabyte).
const PLAIN_BYTES_EVERY: Duration = Duration::from_secs(10);

/// The id of the step that writes `--output` (its bytes are written, not pushed).
pub const OUTPUT_STEP: &str = "output";

#[derive(Debug, Default)]
pub(super) struct State {
    /// The running steps of each id: several at once where one step runs for each platform
    /// at the same time (the uv builder's `apt`, `uv`, `layers`), told apart by label.
    running: HashMap<String, Vec<Step>>,
    /// Steps queued or running, by id: how many of that id count in `total` now (ids such
    /// as "push" come back for a later push, which counts again).
    live: HashMap<String, usize>,
    total: usize,
    done: usize,
    /// Bytes per step and layer.
    transfers: HashMap<String, Layers>,
}

#[derive(Debug)]
struct Step {
    /// What the live view shows (the platform in front, when a build makes several).
    label: String,
    started: Instant,
    /// The last line of output, shown beside a running step in the live view.
    last_line: Option<String>,
    /// When the plain view last printed this step's pushed bytes.
    bytes_said: Instant,
}

/// The header's count: steps done of the steps known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub done: usize,
    pub total: usize,
}

/// A running step's line in the live view: its label, then what it is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Running {
    pub label: String,
    pub activity: Option<Activity>,
}

/// What a running step is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Activity {
    /// `pushing 45.2 MB / 120.0 MB`.
    Bytes(String),
    /// Its last line of output.
    Line(String),
}

/// A step that ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Finished {
    pub counts: Counts,
    /// How long it ran (0 for a step that never reported its start).
    pub seconds: f64,
    /// The bytes it pushed (0 for none).
    pub sent: u64,
}

impl Finished {
    /// `CACHED` or `12.3s`, after the bytes pushed when there were some.
    pub fn when(&self, cached: bool) -> String {
        let when = if cached {
            "CACHED".to_string()
        } else {
            format!("{:.1}s", self.seconds)
        };
        if self.sent > 0 {
            format!("{} {when}", bytes(self.sent))
        } else {
            when
        }
    }
}

/// Bytes pushed by a running step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Transfer {
    pub running: Running,
    /// The byte count for the plain view, when it is due again.
    pub due: Option<String>,
}

impl State {
    /// The header's count.
    pub fn counts(&self) -> Counts {
        Counts {
            done: self.done,
            total: self.total,
        }
    }

    /// A step that will run: the new count, unless it was counted already.
    pub fn queue(&mut self, id: &str) -> Option<Counts> {
        let counted = self.live.entry(id.to_string()).or_insert(0);
        if *counted > 0 {
            return None;
        }
        *counted = 1;
        self.total += 1;
        Some(self.counts())
    }

    /// Step `id` started, shown as `label`: the new count, or `None` when it runs already
    /// (the same id and label). Another label of a running id is another step beside it.
    pub fn start(&mut self, id: &str, label: String, now: Instant) -> Option<Counts> {
        let instances = self.running.entry(id.to_string()).or_default();
        if instances.iter().any(|s| s.label == label) {
            return None;
        }
        // A queued id was counted once, for its first step.
        let counted = self.live.entry(id.to_string()).or_insert(0);
        if *counted <= instances.len() {
            *counted += 1;
            self.total += 1;
        }
        instances.push(Step {
            label,
            started: now,
            last_line: None,
            bytes_said: now,
        });
        Some(self.counts())
    }

    /// Step `id` shown as `label` ended (else the oldest of that id; a step never announced
    /// counts too).
    pub fn finish(&mut self, id: &str, label: &str, now: Instant) -> Finished {
        let step = self.running.get_mut(id).and_then(|instances| {
            let at = instances.iter().position(|s| s.label == label);
            let at = at.or((!instances.is_empty()).then_some(0))?;
            Some(instances.remove(at))
        });
        if self.running.get(id).is_some_and(Vec::is_empty) {
            self.running.remove(id);
        }
        match self.live.get_mut(id) {
            Some(counted) if *counted > 1 => *counted -= 1,
            Some(_) => {
                self.live.remove(id);
            }
            None => self.total += 1,
        }
        self.done += 1;
        let transfer = self.transfers.remove(id);
        Finished {
            counts: self.counts(),
            seconds: step.map_or(0.0, |s| {
                now.saturating_duration_since(s.started).as_secs_f64()
            }),
            sent: transfer.map_or(0, |t| bytes_of(&t).0),
        }
    }

    /// Output of step `id`: its line now, when it runs and `text` has a line that is not
    /// blank (the last one is shown).
    pub fn output(&mut self, id: &str, text: &str) -> Option<Running> {
        let step = self.running.get_mut(id)?.last_mut()?;
        let last = text.lines().rfind(|l| !l.trim().is_empty())?;
        step.last_line = Some(last.trim().to_string());
        Some(running(id, step, self.transfers.get(id)))
    }

    /// `status` of `layer` pushed by step `id` (`current`/`total` bytes, when known): its
    /// line now, when it runs. A push whose layers are not named (dockerd's, through
    /// bollard) tells them apart by size; its statuses without bytes cannot be placed.
    pub fn push(
        &mut self,
        id: &str,
        layer: Option<&str>,
        status: &str,
        (current, total): (Option<u64>, Option<u64>),
        now: Instant,
    ) -> Option<Transfer> {
        let layer = match (layer, current, total) {
            (Some(layer), _, _) => layer.to_string(),
            (None, Some(_), Some(total)) => format!("{total} bytes"),
            _ => return None,
        };
        let layers = self.transfers.entry(id.to_string()).or_default();
        let entry = layers.entry(layer).or_insert((0, None));
        *entry = pushed(*entry, status, current, total);
        let step = self.running.get_mut(id)?.last_mut()?;
        let layers = self.transfers.get(id);
        let text = layers.and_then(|t| transfer_text(id, t));
        let due =
            text.filter(|_| now.saturating_duration_since(step.bytes_said) >= PLAIN_BYTES_EVERY);
        if due.is_some() {
            step.bytes_said = now;
        }
        Some(Transfer {
            running: running(id, step, layers),
            due,
        })
    }

    /// Takes the steps that never reported an end out, and the steps announced but never
    /// run out of the count: their ids, and the count.
    pub fn clear(&mut self) -> (Vec<String>, Counts) {
        let ids: Vec<String> = self.running.drain().map(|(id, _)| id).collect();
        for id in &ids {
            self.live.remove(id);
        }
        self.total -= self.live.values().sum::<usize>();
        self.live.clear();
        (ids, self.counts())
    }

    /// Step `id`'s bytes sent and to send, and their text.
    #[cfg(test)]
    pub fn transfer(&self, id: &str) -> ((u64, u64), Option<String>) {
        let layers = &self.transfers[id];
        (bytes_of(layers), transfer_text(id, layers))
    }

    /// Ends one image's count: what it was; the next step counts from zero.
    pub fn reset(&mut self) -> Counts {
        let counts = self.counts();
        (self.done, self.total) = (0, 0);
        counts
    }
}

/// A running step's line: its bytes when some size is known, else its last line of output.
fn running(id: &str, step: &Step, layers: Option<&Layers>) -> Running {
    let activity = match layers.and_then(|t| transfer_text(id, t)) {
        Some(bytes) => Some(Activity::Bytes(bytes)),
        None => step.last_line.clone().map(Activity::Line),
    };
    Running {
        label: step.label.clone(),
        activity,
    }
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
fn bytes_of(layers: &Layers) -> (u64, u64) {
    layers.values().fold((0, 0), |(sent, size), (s, t)| {
        (sent + s, size + t.unwrap_or(*s).max(*s))
    })
}

/// `pushing 45.2 MB / 120.0 MB` (`writing …` for the output step, [`OUTPUT_STEP`]), once
/// some size is known.
fn transfer_text(step: &str, layers: &Layers) -> Option<String> {
    let (sent, size) = bytes_of(layers);
    let verb = if step == OUTPUT_STEP {
        "writing"
    } else {
        "pushing"
    };
    (size > 0).then(|| format!("{verb} {} / {}", bytes(sent), bytes(size)))
}

/// `n` things, the noun in the plural unless `n` is 1: `1 file`, `3 files`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

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
    fn counts_say_one_thing_and_several_things() {
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(1000, "file"), "1000 files");
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

    fn counts(done: usize, total: usize) -> Counts {
        Counts { done, total }
    }

    #[test]
    fn steps_count_once_while_live_and_again_when_an_id_comes_back() {
        let now = Instant::now();
        let mut state = State::default();
        assert_eq!(state.queue("a"), Some(counts(0, 1)));
        assert_eq!(state.queue("a"), None);
        assert_eq!(state.start("a", "A".into(), now), Some(counts(0, 1)));
        // Started twice: nothing new to show.
        assert_eq!(state.start("a", "A".into(), now), None);
        let later = now + Duration::from_millis(1500);
        let finished = state.finish("a", "A", later);
        assert_eq!(finished.counts, counts(1, 1));
        assert_eq!(finished.seconds, 1.5);
        assert_eq!(finished.when(false), "1.5s");
        // A step never announced nor started counts when it ends, and took no time.
        let cached = state.finish("b", "B", later);
        assert_eq!((cached.counts, cached.seconds), (counts(2, 2), 0.0));
        assert_eq!(cached.when(true), "CACHED");
        assert_eq!(state.start("a", "A".into(), later), Some(counts(2, 3)));
    }

    /// Two platforms' steps of one id at once (the uv builder's `apt` for amd64 and arm64):
    /// each counts, shows and times apart, whichever ends first.
    #[test]
    fn steps_of_one_id_running_at_once_are_told_apart_by_label() {
        let now = Instant::now();
        let mut state = State::default();
        assert_eq!(state.queue("apt"), Some(counts(0, 1)));
        let amd64 = "write the apt layers for linux/amd64";
        let arm64 = "write the apt layers for linux/arm64";
        assert_eq!(state.start("apt", amd64.into(), now), Some(counts(0, 1)));
        let later = now + Duration::from_secs(1);
        assert_eq!(state.start("apt", arm64.into(), later), Some(counts(0, 2)));
        assert_eq!(
            state.start("apt", arm64.into(), later),
            None,
            "started twice"
        );
        let line = state.output("apt", "unpacking").unwrap();
        assert_eq!(line.label, arm64, "output goes to the latest");
        let arm64_done = state.finish("apt", arm64, now + Duration::from_secs(3));
        assert_eq!((arm64_done.counts, arm64_done.seconds), (counts(1, 2), 2.0));
        let amd64_done = state.finish("apt", amd64, now + Duration::from_secs(4));
        assert_eq!((amd64_done.counts, amd64_done.seconds), (counts(2, 2), 4.0));
        assert_eq!(state.output("apt", "x"), None, "none runs");
        // The id comes back: one more step.
        assert_eq!(state.start("apt", amd64.into(), later), Some(counts(2, 3)));
        assert_eq!(state.clear(), (vec!["apt".to_string()], counts(2, 3)));
    }

    #[test]
    fn clearing_drops_running_steps_and_uncounts_the_ones_never_run() {
        let now = Instant::now();
        let mut state = State::default();
        state.queue("never");
        state.start("hung", "H".into(), now);
        assert_eq!(state.clear(), (vec!["hung".to_string()], counts(0, 1)));
        assert_eq!(state.output("hung", "x"), None);
        assert_eq!(state.reset(), counts(0, 1));
        assert_eq!(state.queue("next"), Some(counts(0, 1)));
    }

    #[test]
    fn a_running_step_shows_its_bytes_else_its_last_line() {
        let now = Instant::now();
        let mut state = State::default();
        assert_eq!(state.output("push", "not running"), None);
        state.start("push", "[linux/arm64] push".into(), now);
        assert_eq!(state.output("push", "\n  \n"), None);
        let line = state.output("push", "first\n  second  \n\n").unwrap();
        assert_eq!(line.label, "[linux/arm64] push");
        assert_eq!(line.activity, Some(Activity::Line("second".into())));
        // A status without bytes of an unnamed layer cannot be placed.
        assert_eq!(
            state.push("push", None, "Preparing", (None, None), now),
            None
        );
        let of_4k = |done: u64| (Some(done), Some(4_000));
        let pushing = state.push("push", Some("l"), "Pushing", of_4k(2_000), now);
        let pushing = pushing.unwrap();
        let bytes = Activity::Bytes("pushing 2.0 kB / 4.0 kB".into());
        assert_eq!(pushing.running.activity, Some(bytes));
        // The plain view repeats the count every 10 s, not on every status.
        assert_eq!(pushing.due, None);
        let later = now + PLAIN_BYTES_EVERY;
        let due = state.push("push", Some("l"), "Pushing", of_4k(3_000), later);
        assert_eq!(due.unwrap().due.as_deref(), Some("pushing 3.0 kB / 4.0 kB"));
        let again = state.push("push", Some("l"), "Pushed", (None, None), later);
        assert_eq!(again.unwrap().due, None);
        let finished = state.finish("push", "[linux/arm64] push", later);
        assert_eq!(finished.sent, 4_000);
        assert_eq!(finished.when(false), "4.0 kB 10.0s");
    }
}
