//! `imagespec prune`: what the registry fast path and the builds leave behind, removed when
//! nothing uses it any more.
//!
//! - **Registry**: the dependency images (`<repository>:deps-<key>`, one per dependency set
//!   and, for several platforms, an index with one tag per platform) that no image tag of
//!   the repository uses (`decide`: the inputs label names it, or an unlabelled image
//!   starts with its layers); `keep` keeps the
//!   most recently created unused ones. A manifest another kept tag names is never deleted.
//! - **Daemon**: the same for dockerd's local `deps-*` tags (an image of the repository
//!   uses one by label or layers), and working tags (`…-unlabelled-…`) left by builds
//!   that ended more than a day ago. Skipped, with a note, when no daemon answers.
//! - **Cache**: stale entries of the cache directory (`cache`).
//!
//! ```no_run
//! # async fn f() -> Result<(), imagespec::Error> {
//! use imagespec::prune::{Places, PruneOptions, RepositoryTarget};
//! use imagespec::oci::reference::Repository;
//! let app = Repository::new(None, "localhost:5000/app").expect("a repository name");
//! let report = imagespec::prune::run(&PruneOptions {
//!     repositories: vec![RepositoryTarget::new(app)],
//!     local_repositories: vec![],
//!     places: Places::all(),
//!     dry_run: true,
//!     keep: 1,
//!     uv_cache: false,
//!     timeouts: Default::default(),
//! })
//! .await?;
//! for item in report.items.iter().filter(|i| i.remove) {
//!     println!("{} {}", item.place.name(), item.what);
//! }
//! # Ok(()) }
//! ```

pub(crate) mod cache;
pub(crate) mod daemon;
pub(crate) mod decide;
pub(crate) mod registry;

use crate::builders::BackendError;
use crate::oci::reference::Repository;
use crate::timeouts::Timeouts;
use serde::Serialize;
use std::path::PathBuf;

/// A registry repository to prune, and the docker config holding its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryTarget {
    /// `registry/name`.
    pub repository: Repository,
    /// `None`: docker's config (`DOCKER_CONFIG`, `~/.docker/config.json`).
    pub registry_config: Option<PathBuf>,
}

impl RepositoryTarget {
    pub fn new(repository: Repository) -> RepositoryTarget {
        RepositoryTarget {
            repository,
            registry_config: None,
        }
    }
}

/// Where to prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Places {
    pub registry: bool,
    pub daemon: bool,
    pub cache: bool,
}

impl Places {
    pub fn all() -> Places {
        Places {
            registry: true,
            daemon: true,
            cache: true,
        }
    }
}

/// What `imagespec prune` is asked to do.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The registry repositories; in the daemon, the repositories looked at (all when
    /// empty).
    pub repositories: Vec<RepositoryTarget>,
    /// Repositories only in dockerd (of specs without a `registry`): looked at there.
    pub local_repositories: Vec<Repository>,
    pub places: Places,
    /// Decide and report, remove nothing.
    pub dry_run: bool,
    /// Unused dependency images kept per repository, the most recently created.
    pub keep: usize,
    /// Also empty uv's cache.
    pub uv_cache: bool,
    pub timeouts: Timeouts,
}

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    Registry,
    Daemon,
    Cache,
}

impl Place {
    pub fn name(self) -> &'static str {
        match self {
            Place::Registry => "registry",
            Place::Daemon => "daemon",
            Place::Cache => "cache",
        }
    }
}

/// One thing prune looked at: removed (or, in a dry run, to be removed), or kept and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub place: Place,
    /// The group it is listed under: the repository (registry, daemon) or the cache dir.
    pub group: String,
    /// The dependency set (`deps-<key>`), the daemon tag, or the cache path.
    pub what: String,
    /// `dependency image`, `working tag`, or the cache area (`staged venv`, …).
    pub kind: String,
    /// Tags removed with it (registry and daemon).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Registry: the manifests deleted (indexes first); daemon: the image id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
    /// When it was made (RFC 3339), if known.
    pub created: Option<String>,
    /// Bytes: registry, the blobs its manifests name; daemon, the image's size (shared
    /// layers included); cache, the files.
    pub size: Option<u64>,
    /// Registry: the bytes no kept manifest names (freed by the registry's garbage
    /// collection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freed: Option<u64>,
    /// Whether it goes.
    pub remove: bool,
    /// Why it goes, or why it stays.
    pub reason: String,
    /// Why it stays, as data (registry and daemon dependency images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<decide::Kept>,
    /// Whether it was removed (never in a dry run).
    pub done: bool,
    /// Why removing it failed.
    pub error: Option<String>,
}

/// A place that could not be looked at, or a note about one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub place: Place,
    pub group: String,
    pub message: String,
    /// Whether it leaves prune unable to tell what is used (exit 3), rather than a
    /// remark (a missing daemon).
    pub cannot_tell: bool,
}

/// What `imagespec prune` did, or would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub items: Vec<Item>,
    pub notes: Vec<Note>,
}

impl Report {
    /// 1 when a removal failed; 3 when what is used could not be told somewhere (a
    /// registry unreachable or refusing, a tag unreadable); else 0.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        if self.items.iter().any(|i| i.error.is_some()) {
            crate::exit::ExitCode::Failed
        } else if self.notes.iter().any(|n| n.cannot_tell)
            || self.items.iter().any(|i| {
                matches!(
                    i.kept,
                    Some(decide::Kept::CannotTell { .. } | decide::Kept::Unreadable { .. })
                )
            })
        {
            crate::exit::ExitCode::CannotTell
        } else {
            crate::exit::ExitCode::Done
        }
    }
}

/// RFC 3339 of Unix seconds.
pub(crate) fn rfc3339(seconds: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The items for a repository's (or the daemon's) dependency sets.
pub(crate) fn set_items(
    place: Place,
    group: &str,
    decisions: &[decide::SetDecision],
    size: impl Fn(&decide::SetDecision) -> Option<u64>,
) -> Vec<Item> {
    decisions
        .iter()
        .map(|d| {
            let (remove, digests, reason, kept) = match &d.verdict {
                decide::Verdict::Remove { digests } => (
                    true,
                    digests.clone(),
                    "used by no image tag".to_string(),
                    None,
                ),
                decide::Verdict::Keep { because } => {
                    (false, vec![], because.to_string(), Some(because.clone()))
                }
            };
            Item {
                place,
                group: group.to_string(),
                what: d.set.clone(),
                kind: "dependency image".into(),
                tags: d.tags.clone(),
                digests,
                created: d.created.and_then(rfc3339),
                size: size(d),
                freed: (place == Place::Registry && remove).then_some(d.freed),
                remove,
                reason,
                kept,
                done: false,
                error: None,
            }
        })
        .collect()
}

/// Prunes what `options` names. Errors are bad input only (a docker config that cannot
/// be read); what goes wrong in a place is in the report.
pub async fn run(options: &PruneOptions) -> Result<Report, BackendError> {
    let mut report = Report {
        dry_run: options.dry_run,
        items: Vec::new(),
        notes: Vec::new(),
    };
    if options.places.registry {
        if options.repositories.is_empty() {
            report.notes.push(Note {
                place: Place::Registry,
                group: String::new(),
                message: "no repository named (a SPEC with a `registry`, or --repository \
                          REGISTRY/NAME): no registry looked at"
                    .into(),
                cannot_tell: false,
            });
        }
        for target in &options.repositories {
            prune_repository(target, options, &mut report).await?;
        }
    }
    if options.places.daemon {
        let repositories: Vec<&Repository> = options
            .repositories
            .iter()
            .map(|r| &r.repository)
            .chain(&options.local_repositories)
            .collect();
        daemon::prune(&repositories, options, &mut report).await;
    }
    if options.places.cache {
        prune_cache(options, &mut report);
    }
    Ok(report)
}

async fn prune_repository(
    target: &RepositoryTarget,
    options: &PruneOptions,
    report: &mut Report,
) -> Result<(), BackendError> {
    let named = &target.repository;
    let repository = &named.to_string();
    let client = crate::registry::session(
        named.host(),
        target.registry_config.as_deref(),
        options.timeouts,
    )
    .map_err(BackendError::from)?;
    let cannot_tell = |message: String| Note {
        place: Place::Registry,
        group: repository.clone(),
        message,
        cannot_tell: true,
    };
    let tags = match registry::gather(&client, named).await {
        Ok(tags) => tags,
        Err(e) => {
            report.notes.push(cannot_tell(format!(
                "{} (nothing removed from {repository})",
                e.detail()
            )));
            return Ok(());
        }
    };
    if tags.is_empty() {
        report.notes.push(Note {
            place: Place::Registry,
            group: repository.clone(),
            message: "no tags (no such repository?)".into(),
            cannot_tell: false,
        });
    }
    let mut decisions = decide::decide(&tags, options.keep);
    let mut deleted = Default::default();
    if !options.dry_run && decisions.iter().any(decide::SetDecision::removed) {
        match registry::delete(&client, named, &tags, options.keep, &mut decisions).await {
            Ok(d) => deleted = d,
            Err(e) => report.notes.push(cannot_tell(format!(
                "listing the tags again before deleting: {} (nothing removed)",
                e.detail()
            ))),
        }
    }
    let mut items = set_items(Place::Registry, repository, &decisions, |d| Some(d.size));
    for item in &mut items {
        if let Some(done) = deleted.get(&item.what) {
            item.done = done.error.is_none();
            item.error = done.error.clone();
        }
    }
    report.items.extend(items);
    Ok(())
}

fn prune_cache(options: &PruneOptions, report: &mut Report) {
    let Some(dir) = crate::source::cache_home() else {
        report.notes.push(Note {
            place: Place::Cache,
            group: String::new(),
            message: "no cache directory (no HOME, XDG_CACHE_HOME or IMAGESPEC_CACHE_DIR)".into(),
            cannot_tell: false,
        });
        return;
    };
    let group = dir.display().to_string();
    let ages = cache::Ages::default();
    for entry in cache::scan(&dir, options.uv_cache, std::time::SystemTime::now()) {
        let Some(reason) = cache::stale(&entry, &ages) else {
            continue;
        };
        let mut item = Item {
            place: Place::Cache,
            group: group.clone(),
            what: entry.path.display().to_string(),
            kind: entry.area.name().into(),
            tags: vec![],
            digests: vec![],
            created: None,
            size: Some(entry.size),
            freed: None,
            remove: true,
            reason,
            kept: None,
            done: false,
            error: None,
        };
        if !options.dry_run {
            match cache::remove(&entry) {
                Ok(()) => item.done = true,
                Err(e) => item.error = Some(e.to_string()),
            }
        }
        report.items.push(item);
    }
}
