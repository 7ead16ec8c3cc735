//! `--json` events (see [`super`]): one JSON object per line on stdout.

use super::{Change, Shown};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Instant;

/// Writes events as JSON lines.
pub(super) struct JsonEvents {
    /// When the printer was made: events carry `elapsed` seconds since.
    created: Instant,
}

impl JsonEvents {
    pub fn new() -> JsonEvents {
        JsonEvents {
            created: Instant::now(),
        }
    }

    /// Shows `event` (`change`: what it changed); a queued step is not an event here.
    /// `platform` and `image`: the ones in scope.
    pub fn show(
        &self,
        event: &Shown<'_>,
        change: &Change,
        platform: Option<&str>,
        image: Option<&str>,
    ) {
        let value = match (event, change) {
            (Shown::Message { text, warning }, _) => {
                let kind = if *warning { "warning" } else { "info" };
                json!({"event": kind, "message": text})
            }
            (Shown::Queued { .. }, _) => return,
            (Shown::Started { step }, _) => json!({
                "event": "step", "id": step.id, "name": step.name, "label": step.label,
                "state": "started",
            }),
            (
                Shown::Done {
                    step,
                    cached,
                    error,
                },
                change,
            ) => {
                let seconds = match change {
                    Change::Finished(finished) => finished.seconds,
                    _ => 0.0,
                };
                let state = if error.is_some() { "failed" } else { "done" };
                json!({
                    "event": "step", "id": step.id, "name": step.name, "label": step.label,
                    "state": state, "cached": cached, "seconds": seconds, "error": error,
                })
            }
            (Shown::Log { id, text }, _) => json!({"event": "log", "id": id, "text": text}),
            (Shown::Push(push), _) => json!({
                "event": "push", "step": push.step, "layer": push.layer, "status": push.status,
                "current": push.current, "total": push.total,
            }),
        };
        self.write(value, platform, image);
    }

    /// Writes `value` as one line, with `elapsed` and (for the events about one platform's
    /// image of several) `platform` added, and `key` for the events of one image of
    /// several built at once (`--jobs`).
    pub fn write(&self, mut value: Value, platform: Option<&str>, image: Option<&str>) {
        if let Some(object) = value.as_object_mut() {
            let elapsed = (self.created.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
            object.insert("elapsed".into(), json!(elapsed));
            let about_one = matches!(
                object.get("event").and_then(Value::as_str),
                Some("step" | "info" | "log" | "push" | "warning")
            );
            if let (Some(p), true) = (platform, about_one) {
                object.insert("platform".into(), json!(p));
            }
            if let Some(image) = image {
                object.insert("key".into(), json!(image));
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }
}
