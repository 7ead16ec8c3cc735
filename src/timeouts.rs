//! How long imagespec waits on registries and dockerd: a *connect* timeout, and a *stall*
//! timeout — how long a request may go without a sign of life (a byte sent or received, a
//! build status) before it is given up. A stall timeout, not a total one: a multi-GB layer
//! may upload for an hour as long as it keeps moving, while a registry that takes a blob
//! and never answers fails after the stall timeout.
//!
//! ```
//! use imagespec::timeouts::{Activity, Timeouts, unless_stalled};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let timeouts = Timeouts::default();
//! assert_eq!(timeouts.stall.as_secs(), 60);
//! let activity = Activity::new();
//! let answer = unless_stalled(async { 42 }, &activity, timeouts.stall).await;
//! assert_eq!(answer.ok(), Some(42));
//! # });
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The environment variable for [`Timeouts::connect`] (also `--connect-timeout`).
pub const CONNECT_TIMEOUT_ENV: &str = "IMAGESPEC_CONNECT_TIMEOUT";
/// The environment variable for [`Timeouts::stall`] (also `--stall-timeout`).
pub const STALL_TIMEOUT_ENV: &str = "IMAGESPEC_STALL_TIMEOUT";

/// The connect and stall timeouts of every registry and daemon request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection (TCP, TLS) to a registry; dockerd's `/_ping` answer.
    pub connect: Duration,
    /// The longest a request may send and receive nothing (for a build: no status from
    /// BuildKit while dockerd does not answer `/_ping` either).
    pub stall: Duration,
}

impl Default for Timeouts {
    /// Connect 10 s, stall 60 s: generous for a loaded registry, short enough that CI
    /// notices a hung one long before its job timeout.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            stall: Duration::from_secs(60),
        }
    }
}

/// A timeout that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecondsError {
    #[error("`{text}` is not a number of seconds (e.g. 10 or 2.5)")]
    NotANumber {
        text: String,
        #[source]
        source: std::num::ParseFloatError,
    },
    #[error("`{text}`: a timeout is more than 0 and at most 86400 seconds")]
    OutOfRange { text: String },
}

/// Seconds as the command line and environment give them (`10`, `2.5`): positive, finite,
/// at most a day.
pub fn parse_seconds(text: &str) -> Result<Duration, SecondsError> {
    let seconds: f64 = text
        .trim()
        .trim_end_matches('s')
        .trim()
        .parse()
        .map_err(|source| SecondsError::NotANumber {
            text: text.to_string(),
            source,
        })?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(SecondsError::OutOfRange {
            text: text.to_string(),
        });
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration the way errors name it: `3 s`, `2.5 s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// The time of a request's last sign of life, shared with what moves its bytes (an
/// upload's body stream, a download's writer).
#[derive(Debug, Clone)]
pub struct Activity(Arc<Mutex<Instant>>);

impl Activity {
    /// Activity that starts now.
    pub fn new() -> Activity {
        Activity(Arc::new(Mutex::new(Instant::now())))
    }

    /// Records a sign of life.
    pub fn touch(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = Instant::now();
        }
    }

    fn last(&self) -> Instant {
        self.0.lock().map_or_else(|_| Instant::now(), |last| *last)
    }
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

/// A request that showed no sign of life for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no progress for {}", seconds(*.0))]
pub struct Stalled(pub Duration);

/// Runs `future` to completion, unless `activity` shows no sign of life for `stall`; the
/// future is dropped then (which closes its connection).
pub async fn unless_stalled<F: std::future::Future>(
    future: F,
    activity: &Activity,
    stall: Duration,
) -> Result<F::Output, Stalled> {
    tokio::pin!(future);
    loop {
        let deadline = activity.last() + stall;
        tokio::select! {
            output = &mut future => return Ok(output),
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + stall <= Instant::now() {
                    return Err(Stalled(stall));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_as_written_and_refuse_nonsense() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_seconds("3s"), Ok(Duration::from_secs(3)));
        for bad in ["0", "-1", "nan", "inf", "ten", "", "100000"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds(Duration::from_secs(3)), "3 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }

    #[tokio::test]
    async fn a_silent_future_stalls_and_a_moving_one_does_not() {
        let stall = Duration::from_millis(300);
        let silent = Activity::new();
        let started = Instant::now();
        let out = unless_stalled(std::future::pending::<()>(), &silent, stall).await;
        assert_eq!(out, Err(Stalled(stall)));
        assert!(started.elapsed() >= stall && started.elapsed() < stall * 3);

        // Touched every 100 ms for 1.5 s: longer than the stall timeout in total, never
        // silent for 300 ms.
        let moving = Activity::new();
        let touched = moving.clone();
        let slow = async move {
            for _ in 0..15 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                touched.touch();
            }
            "done"
        };
        assert_eq!(unless_stalled(slow, &moving, stall).await, Ok("done"));
    }
}
