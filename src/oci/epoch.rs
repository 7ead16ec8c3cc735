//! `SOURCE_DATE_EPOCH` (reproducible-builds.org): the one time every timestamp imagespec
//! writes into an image takes when it is set — the layers' tar entries, the config's
//! `created` and the `created` of the history entries it adds, the day of the `flytekit`
//! user's last password change in `/etc/shadow`. Unset, those are fixed as before: layer
//! entries at 1980-01-01 (the build context's time, which BuildKit's COPY keeps), the
//! config's `created` the base's (the dependency image's on the fast path). Either way the
//! same inputs give the same digest; the variable only lets a build pin its own time.
//!
//! Parsed once at the edge into a [`SourceDateEpoch`]; a malformed value is an error
//! (exit 2), never silently ignored, as the specification asks.

use std::num::ParseIntError;

/// The variable's name.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// The tar entries' time when `SOURCE_DATE_EPOCH` is unset: 1980-01-01, the build context's
/// (what BuildKit's COPY keeps).
pub const DEFAULT_LAYER_MTIME: u64 = 315_532_800;

/// The largest value taken: a GNU tar header's 11 octal digits (the year 2242).
const MAX_SECONDS: u64 = 0o77_777_777_777;

/// Seconds since 1970-01-01 UTC, from `SOURCE_DATE_EPOCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceDateEpoch(u64);

/// `SOURCE_DATE_EPOCH` holds no whole number of seconds we can write.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error(
        "{SOURCE_DATE_EPOCH}={value:?}: expected whole seconds since 1970-01-01 UTC (e.g. 1700000000)"
    )]
    NotSeconds {
        value: String,
        #[source]
        source: ParseIntError,
    },
    #[error("{SOURCE_DATE_EPOCH}={value}: expected at most {MAX_SECONDS} (a tar header's limit)")]
    TooLate { value: u64 },
}

impl SourceDateEpoch {
    /// The variable's value (surrounding white space allowed).
    pub fn parse(value: &str) -> Result<SourceDateEpoch, EpochError> {
        let seconds: u64 = value
            .trim()
            .parse()
            .map_err(|source| EpochError::NotSeconds {
                value: value.to_string(),
                source,
            })?;
        if seconds > MAX_SECONDS {
            return Err(EpochError::TooLate { value: seconds });
        }
        Ok(SourceDateEpoch(seconds))
    }

    /// `SOURCE_DATE_EPOCH` of this process: `None` when unset or empty.
    pub fn from_env() -> Result<Option<SourceDateEpoch>, EpochError> {
        match std::env::var(SOURCE_DATE_EPOCH) {
            Ok(v) if !v.trim().is_empty() => SourceDateEpoch::parse(&v).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => {
                SourceDateEpoch::parse(&v.to_string_lossy()).map(Some)
            }
        }
    }

    /// Seconds since 1970-01-01 UTC.
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// RFC 3339 in whole seconds, UTC (`2023-11-14T22:13:20Z`), as a config's `created`.
    pub fn rfc3339(self) -> String {
        use time::format_description::well_known::Rfc3339;
        time::OffsetDateTime::from_unix_timestamp(self.0 as i64)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .expect("seconds up to the year 2242 format")
    }

    /// Whole days since 1970-01-01 (`/etc/shadow`'s unit).
    pub fn days(self) -> i64 {
        (self.0 / 86_400) as i64
    }
}

/// The time of every layer entry: `epoch`, else [`DEFAULT_LAYER_MTIME`].
pub fn layer_mtime(epoch: Option<SourceDateEpoch>) -> u64 {
    epoch.map_or(DEFAULT_LAYER_MTIME, SourceDateEpoch::seconds)
}

/// A config's `created`: `epoch`'s when set, else the one it has (`None`: it has none).
pub fn created(
    epoch: Option<SourceDateEpoch>,
    has: Option<&serde_json::Value>,
) -> Option<serde_json::Value> {
    match epoch {
        Some(e) => Some(serde_json::Value::String(e.rfc3339())),
        None => has.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_are_taken_and_anything_else_refused() {
        let e = SourceDateEpoch::parse(" 1700000000\n").unwrap();
        assert_eq!(e.seconds(), 1_700_000_000);
        assert_eq!(e.rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(e.days(), 19_675);
        assert_eq!(
            SourceDateEpoch::parse("0").unwrap().rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        for bad in ["", "-1", "1.5", "1700000000Z", "now"] {
            let err = SourceDateEpoch::parse(bad).unwrap_err().to_string();
            assert!(err.contains("expected whole seconds"), "{bad:?}: {err}");
        }
        let late = SourceDateEpoch::parse("8589934592").unwrap_err();
        assert!(matches!(late, EpochError::TooLate { .. }), "{late}");
        assert!(SourceDateEpoch::parse("8589934591").is_ok());
    }

    #[test]
    fn layers_default_to_the_build_contexts_1980() {
        assert_eq!(layer_mtime(None), 315_532_800);
        let e = SourceDateEpoch::parse("1700000000").unwrap();
        assert_eq!(layer_mtime(Some(e)), 1_700_000_000);
    }

    #[test]
    fn created_is_the_epochs_else_kept() {
        let had = serde_json::json!("2026-01-01T00:00:00Z");
        let e = SourceDateEpoch::parse("1700000000").ok();
        assert_eq!(
            created(e, Some(&had)),
            Some(serde_json::json!("2023-11-14T22:13:20Z"))
        );
        assert_eq!(
            created(e, None),
            Some(serde_json::json!("2023-11-14T22:13:20Z"))
        );
        assert_eq!(created(None, Some(&had)), Some(had));
        assert_eq!(created(None, None), None);
    }
}
