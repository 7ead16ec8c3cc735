//! Which dependency images of a repository go: one pure function, [`decide`], over what
//! every tag of the repository points at, so that the rule that matters — never remove a
//! manifest a kept tag still names — is unit-tested without a registry.
//!
//! A *dependency set* is `deps-<key>` (32 hex digits, [`crate::plan::BuildPlan`]'s
//! dependency key) and the tags that extend it (`deps-<key>-linux-arm64`: one platform's
//! manifest of a multi-platform dependency index). Every other tag is an *image tag*; image
//! tags are never removed. A set is *used* when an image tag's inputs label
//! (`org.imagespec.inputs`, [`crate::explain`]) names it; an image tag without such a label
//! (built before the label existed, by flytekit's own builder, or copied from another
//! repository) uses every set whose layers its images start with — conservative, since
//! dependency images that differ only in their config (`env`) have the same layers — unless
//! it is a dependency image itself under another tag (it only shares their layers). An
//! unused set is removed unless it is among the `keep` most recently created unused ones.
//!
//! The distribution API deletes manifests, not tags: `DELETE /v2/<name>/manifests/<digest>`
//! removes every tag that names the digest. So a set whose tags name a digest that a kept
//! tag also names — directly or as an entry of a kept index — is kept whole. When any image
//! tag cannot be read, no unused set is removed (which sets it uses cannot be told).

use crate::builders::docker::DaemonRequestError;
use crate::builders::remote::cache::CACHE_TAG;
use crate::registry::client::RegistryError;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The prefix of dependency tags.
pub const DEPENDENCY_TAG_PREFIX: &str = "deps-";

/// What a build's working tag of a dependency image has after the dependency tag
/// (dockerd only: `<deps tag>-unlabelled-<pid>-<n>`, see `crate::engine::run`).
pub const WORKING_TAG_MARK: &str = "-unlabelled-";

/// The dependency set `tag` belongs to (`deps-<32 hex>`), if it is a dependency tag. A
/// build's working tag ([`WORKING_TAG_MARK`]) is none: it is the build in progress, an
/// image that uses the set.
pub fn dependency_set(tag: &str) -> Option<&str> {
    const LEN: usize = DEPENDENCY_TAG_PREFIX.len() + 32;
    if tag.contains(WORKING_TAG_MARK) {
        return None;
    }
    let key = tag.get(..LEN)?;
    let hex = key.strip_prefix(DEPENDENCY_TAG_PREFIX)?;
    let is_hex = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let ends = tag.len() == LEN || tag.as_bytes()[LEN] == b'-';
    (is_hex && ends).then_some(key)
}

/// A blob a manifest names, with its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// One image manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub digest: String,
    pub config: Option<Blob>,
    /// In order, base first.
    pub layers: Vec<Blob>,
}

impl Manifest {
    fn starts_with(&self, prefix: &Manifest) -> bool {
        !prefix.layers.is_empty()
            && self.layers.len() >= prefix.layers.len()
            && self
                .layers
                .iter()
                .zip(&prefix.layers)
                .all(|(a, b)| a.digest == b.digest)
    }
}

/// What a tag points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The digest the tag names (an image manifest or an index).
    pub digest: String,
    /// Whether `digest` is an index (then `manifests` are its entries).
    pub index: bool,
    /// The image manifest itself, or the index's entries.
    pub manifests: Vec<Manifest>,
    /// When it was made (Unix seconds; the newest of an index's images), if known.
    pub created: Option<i64>,
    /// The dependency tags (in this repository) its inputs label names.
    pub dependency_images: Vec<String>,
    /// It is a dependency image itself (its config has imagespec's dependency label): a
    /// copy of one under another tag uses no set, it only shares their layers.
    pub is_dependency: bool,
}

/// A tag of the repository and what it points at, or why that could not be read.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub tag: String,
    pub target: Result<Target, Unreadable>,
}

/// Why what a tag points at could not be read (shared: one failed read of an index entry or
/// a config is the reason of every tag naming it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unreadable {
    /// The registry's answer (the operation and why; the repository is the one listed).
    #[error("{}", .0.detail())]
    Registry(#[source] Arc<RegistryError>),
    #[error("{digest}: an index inside an index")]
    NestedIndex { digest: String },
    /// An index entry whose manifest was not read.
    #[error("{digest}: not read")]
    NotRead { digest: String },
    /// dockerd's answer.
    #[error(transparent)]
    Daemon(Arc<DaemonRequestError>),
}

/// How an image tag uses a dependency set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UseKind {
    /// Its inputs label names the set.
    Label,
    /// Its layers start with the layers of one of the set's images.
    Layers,
}

/// An image tag that uses a dependency set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Use {
    pub tag: String,
    pub by: UseKind,
}

/// Why a dependency set is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kept {
    /// Image tags use it.
    UsedBy { uses: Vec<Use> },
    /// Among the `keep` most recently created unused sets.
    Recent { keep: usize },
    /// One of its tags names `digest`, which the kept tag `tag` names too (or which an index
    /// `tag` names holds): deleting it would delete that tag.
    SharesDigest { digest: String, tag: String },
    /// One of its tags could not be read (its digest is unknown).
    Unreadable { tag: String, reason: String },
    /// The image tag `tag` could not be read: whether it uses this set cannot be told.
    CannotTell { tag: String, reason: String },
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::UsedBy { uses } => {
                let shown: Vec<String> = uses
                    .iter()
                    .take(3)
                    .map(|u| {
                        let by = match u.by {
                            UseKind::Label => "label",
                            UseKind::Layers => "layers",
                        };
                        format!("{} ({by})", u.tag)
                    })
                    .collect();
                let more = uses.len().saturating_sub(shown.len());
                write!(f, "used by {}", shown.join(", "))?;
                if more > 0 {
                    write!(f, " and {more} more")?;
                }
                Ok(())
            }
            Kept::Recent { keep } => write!(f, "unused, but among the {keep} most recent (--keep)"),
            Kept::SharesDigest { digest, tag } => write!(
                f,
                "unused, but names {digest}, which the kept tag {tag} names too (deleting it \
                 would delete {tag})"
            ),
            Kept::Unreadable { tag, reason } => write!(f, "{tag} cannot be read: {reason}"),
            Kept::CannotTell { tag, reason } => write!(
                f,
                "unused as far as can be told, but the image tag {tag} cannot be read ({reason})"
            ),
        }
    }
}

/// What happens to one dependency set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Verdict {
    /// Delete these manifests, in this order (indexes before the manifests they name, so a
    /// reader never finds an index with an entry gone). A digest is listed once, in the first
    /// set that removes it.
    Remove {
        digests: Vec<String>,
    },
    Keep {
        because: Kept,
    },
}

/// One dependency set and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetDecision {
    /// `deps-<key>`.
    pub set: String,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// When it was made (Unix seconds), if known.
    pub created: Option<i64>,
    /// Bytes of the blobs its manifests name, each counted once.
    pub size: u64,
    /// Of those, the bytes no kept tag's manifest names (what the registry's garbage
    /// collection can free once the set is removed); 0 when kept.
    pub freed: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl SetDecision {
    pub fn removed(&self) -> bool {
        matches!(self.verdict, Verdict::Remove { .. })
    }
}

/// Decides, for every dependency set among `tags`, whether it is removed (and which
/// digests are deleted for it) or kept (and why). Sets come out in key order.
pub fn decide(tags: &[Tagged], keep: usize) -> Vec<SetDecision> {
    let (sets, images) = group(tags);
    let readable_images: Vec<(&str, &Target)> = images
        .iter()
        .filter_map(|t| {
            t.target
                .as_ref()
                .ok()
                .map(|target| (t.tag.as_str(), target))
        })
        .collect();
    let mut verdicts = first_verdicts(&sets, &images, &readable_images);

    // Digests kept tags name (with an index's entries), and which tag protects each.
    let mut protected: BTreeMap<&str, &str> = BTreeMap::new();
    for (tag, target) in &readable_images {
        protect(&mut protected, tag, target);
    }
    for (key, verdict) in &verdicts {
        if verdict.is_some() {
            protect_set(&mut protected, &sets[key]);
        }
    }
    keep_sharing(&mut verdicts, &sets, &mut protected);

    // Of the sets that could go, the `keep` most recent stay (and what they name).
    let created = |key: &str| -> Option<i64> {
        sets[key]
            .iter()
            .filter_map(|t| t.target.as_ref().ok()?.created)
            .max()
    };
    let mut unused: Vec<&str> = verdicts
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    // Newest first; unknown times last; ties by key, so the choice is the same every run.
    unused.sort_by_key(|k| (std::cmp::Reverse(created(k)), *k));
    for key in unused.iter().take(keep) {
        verdicts.insert(key, Some(Kept::Recent { keep }));
        protect_set(&mut protected, &sets[key]);
    }
    keep_sharing(&mut verdicts, &sets, &mut protected);

    // Blobs of kept manifests: what removing a set cannot free.
    let kept_targets = readable_images.iter().map(|(_, t)| *t).chain(
        verdicts
            .iter()
            .filter(|(_, v)| v.is_some())
            .flat_map(|(k, _)| sets[k].iter().filter_map(|t| t.target.as_ref().ok())),
    );
    let kept_blobs: BTreeSet<&str> = kept_targets
        .flat_map(|target| &target.manifests)
        .flat_map(|m| blobs(m).map(|b| b.digest.as_str()))
        .collect();

    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut counted: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for (key, verdict) in verdicts {
        let members = &sets[key];
        let targets: Vec<&Target> = members
            .iter()
            .filter_map(|t| t.target.as_ref().ok())
            .collect();
        let mut own: BTreeMap<&str, u64> = BTreeMap::new();
        for m in targets.iter().flat_map(|t| &t.manifests) {
            for b in blobs(m) {
                own.insert(&b.digest, b.size);
            }
        }
        let size = own.values().sum();
        let mut tags: Vec<String> = members.iter().map(|t| t.tag.clone()).collect();
        tags.sort();
        let (verdict, freed) = match verdict {
            Some(because) => (Verdict::Keep { because }, 0),
            None => {
                let digests = removal_order(&targets, &protected, &mut listed);
                let freed = own
                    .iter()
                    .filter(|(d, _)| !kept_blobs.contains(*d) && counted.insert(d))
                    .map(|(_, s)| s)
                    .sum();
                (Verdict::Remove { digests }, freed)
            }
        };
        out.push(SetDecision {
            set: key.to_string(),
            tags,
            created: created(key),
            size,
            freed,
            verdict,
        });
    }
    out
}

/// The dependency sets among `tags` (by key, each sorted by tag), and the image tags. The
/// registry cache of remote builds (`buildcache`, [`CACHE_TAG`]) is neither: it is kept, and
/// its blobs (every step's, also of dependency images) use no set.
fn group(tags: &[Tagged]) -> (BTreeMap<&str, Vec<&Tagged>>, Vec<&Tagged>) {
    let mut sets: BTreeMap<&str, Vec<&Tagged>> = BTreeMap::new();
    let mut images: Vec<&Tagged> = Vec::new();
    for tagged in tags.iter().filter(|t| t.tag != CACHE_TAG) {
        match dependency_set(&tagged.tag) {
            Some(key) => sets.entry(key).or_default().push(tagged),
            None => images.push(tagged),
        }
    }
    for members in sets.values_mut() {
        members.sort_by(|a, b| a.tag.cmp(&b.tag));
    }
    (sets, images)
}

/// First verdicts: unreadable, used, cannot tell (an image tag could not be read), or
/// `None`: a candidate for removal.
fn first_verdicts<'a>(
    sets: &BTreeMap<&'a str, Vec<&Tagged>>,
    images: &[&Tagged],
    readable_images: &[(&str, &Target)],
) -> BTreeMap<&'a str, Option<Kept>> {
    let cannot_tell = images.iter().find_map(|t| {
        t.target.as_ref().err().map(|reason| Kept::CannotTell {
            tag: t.tag.clone(),
            reason: reason.to_string(),
        })
    });
    let mut verdicts = BTreeMap::new();
    for (key, members) in sets {
        let unreadable = members.iter().find_map(|t| {
            t.target.as_ref().err().map(|reason| Kept::Unreadable {
                tag: t.tag.clone(),
                reason: reason.to_string(),
            })
        });
        let uses = uses_of(key, members, readable_images);
        let kept = unreadable
            .or_else(|| (!uses.is_empty()).then_some(Kept::UsedBy { uses }))
            .or_else(|| cannot_tell.clone());
        verdicts.insert(*key, kept);
    }
    verdicts
}

/// The digests a removed set deletes, in the order they are deleted: indexes, then the
/// manifests tags name, then the indexes' entries; none a kept tag protects, none listed
/// for an earlier set (`listed`).
fn removal_order(
    targets: &[&Target],
    protected: &BTreeMap<&str, &str>,
    listed: &mut BTreeSet<String>,
) -> Vec<String> {
    let indexes = targets.iter().filter(|t| t.index);
    let order = indexes
        .clone()
        .map(|t| t.digest.as_str())
        .chain(
            targets
                .iter()
                .filter(|t| !t.index)
                .map(|t| t.digest.as_str()),
        )
        .chain(indexes.flat_map(|t| t.manifests.iter().map(|m| m.digest.as_str())));
    order
        .filter(|d| !protected.contains_key(d) && listed.insert(d.to_string()))
        .map(str::to_string)
        .collect()
}

/// Marks the digests `target` (tagged `tag`) names as protected by `tag`.
fn protect<'a>(protected: &mut BTreeMap<&'a str, &'a str>, tag: &'a str, target: &'a Target) {
    protected.entry(&target.digest).or_insert(tag);
    for m in &target.manifests {
        protected.entry(&m.digest).or_insert(tag);
    }
}

fn protect_set<'a>(protected: &mut BTreeMap<&'a str, &'a str>, members: &[&'a Tagged]) {
    for t in members {
        if let Ok(target) = &t.target {
            protect(protected, &t.tag, target);
        }
    }
}

/// Keeps every undecided set whose tag names a protected digest, which protects its own
/// digests in turn: repeated until nothing changes.
fn keep_sharing<'a>(
    verdicts: &mut BTreeMap<&'a str, Option<Kept>>,
    sets: &BTreeMap<&'a str, Vec<&'a Tagged>>,
    protected: &mut BTreeMap<&'a str, &'a str>,
) {
    loop {
        let mut changed = false;
        for (key, verdict) in verdicts.iter_mut() {
            if verdict.is_some() {
                continue;
            }
            let shared = sets[key].iter().find_map(|t| {
                let digest = &t.target.as_ref().ok()?.digest;
                protected
                    .get(digest.as_str())
                    .map(|tag| (digest.clone(), tag.to_string()))
            });
            if let Some((digest, tag)) = shared {
                *verdict = Some(Kept::SharesDigest { digest, tag });
                protect_set(protected, &sets[key]);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

fn blobs(m: &Manifest) -> impl Iterator<Item = &Blob> {
    m.config.iter().chain(&m.layers)
}

/// The image tags that use the set `key` (whose tags are `members`), each once. A tag on
/// the very manifest of a member is not a use but another name for it (the digest rule
/// keeps the set then).
fn uses_of(key: &str, members: &[&Tagged], images: &[(&str, &Target)]) -> Vec<Use> {
    let targets: Vec<&Target> = members
        .iter()
        .filter_map(|t| t.target.as_ref().ok())
        .collect();
    let deps: Vec<&Manifest> = targets.iter().flat_map(|t| &t.manifests).collect();
    let mut uses = Vec::new();
    for (tag, target) in images {
        if targets.iter().any(|t| t.digest == target.digest) {
            continue;
        }
        // A label is the image's own word: dependency images that differ only in their
        // config (`env`, `entrypoint`) have the same layers, so layers decide only for
        // images without one.
        let by = if !target.dependency_images.is_empty() {
            target
                .dependency_images
                .iter()
                .any(|d| dependency_set(d) == Some(key))
                .then_some(UseKind::Label)
        } else if !target.is_dependency
            && target
                .manifests
                .iter()
                .any(|m| deps.iter().any(|d| m.starts_with(d)))
        {
            Some(UseKind::Layers)
        } else {
            None
        };
        if let Some(by) = by {
            uses.push(Use {
                tag: tag.to_string(),
                by,
            });
        }
    }
    uses.sort();
    uses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::client::{Operation, RegistryErrorKind};

    const K1: &str = "deps-11111111111111111111111111111111";
    const K2: &str = "deps-22222222222222222222222222222222";
    const K3: &str = "deps-33333333333333333333333333333333";

    fn blob(d: &str, size: u64) -> Blob {
        Blob {
            digest: d.into(),
            size,
        }
    }

    /// An image manifest `digest` with layers named `layers` (each 10 bytes), config 1 byte.
    fn manifest(digest: &str, layers: &[&str]) -> Manifest {
        Manifest {
            digest: digest.into(),
            config: Some(blob(&format!("cfg-{digest}"), 1)),
            layers: layers.iter().map(|l| blob(l, 10)).collect(),
        }
    }

    fn image(tag: &str, digest: &str, layers: &[&str], created: Option<i64>) -> Tagged {
        Tagged {
            tag: tag.into(),
            target: Ok(Target {
                digest: digest.into(),
                index: false,
                manifests: vec![manifest(digest, layers)],
                created,
                dependency_images: vec![],
                is_dependency: false,
            }),
        }
    }

    fn labelled(mut t: Tagged, deps: &str) -> Tagged {
        if let Ok(target) = &mut t.target {
            target.dependency_images.push(deps.into());
        }
        t
    }

    fn index(tag: &str, digest: &str, entries: Vec<Manifest>, created: Option<i64>) -> Tagged {
        Tagged {
            tag: tag.into(),
            target: Ok(Target {
                digest: digest.into(),
                index: true,
                manifests: entries,
                created,
                dependency_images: vec![],
                is_dependency: false,
            }),
        }
    }

    fn unreadable(tag: &str) -> Tagged {
        Tagged {
            tag: tag.into(),
            target: Err(Unreadable::Registry(Arc::new(RegistryError::new(
                "r/app",
                Operation::ReadManifest,
                RegistryErrorKind::Request {
                    source: oci_client::errors::OciDistributionError::ServerError {
                        code: 500,
                        url: String::new(),
                        message: "500 Internal Server Error".into(),
                    },
                },
            )))),
        }
    }

    /// Whether `set` is kept because it shares a digest with a kept tag.
    fn shares_digest(decisions: &[SetDecision], set: &str) -> bool {
        matches!(
            verdict(decisions, set),
            Verdict::Keep {
                because: Kept::SharesDigest { .. }
            }
        )
    }

    /// The verdict of a set kept because `tag` names its `digest` too.
    fn kept_sharing(digest: &str, tag: &str) -> Verdict {
        Verdict::Keep {
            because: Kept::SharesDigest {
                digest: digest.into(),
                tag: tag.into(),
            },
        }
    }

    fn verdict<'a>(decisions: &'a [SetDecision], set: &str) -> &'a Verdict {
        &decisions
            .iter()
            .find(|d| d.set == set)
            .unwrap_or_else(|| panic!("no decision for {set}"))
            .verdict
    }

    fn removes(digests: &[&str]) -> Verdict {
        Verdict::Remove {
            digests: digests.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn dependency_tags_are_deps_and_32_hex_digits() {
        let key = "deps-0123456789abcdef0123456789abcdef";
        assert_eq!(dependency_set(key), Some(key));
        assert_eq!(dependency_set(&format!("{key}-linux-arm64")), Some(key));
        assert_eq!(
            dependency_set(&format!("{key}-unlabelled-12-0000abcd")),
            None,
            "a working tag is an image using the set, not part of it"
        );
        for not in [
            "deps-foo",
            "deps-0123456789ABCDEF0123456789abcdef",
            &format!("{key}x"),
            "deps-0123",
            "v1",
            "latest",
        ] {
            assert_eq!(dependency_set(not), None, "{not}");
        }
    }

    #[test]
    fn the_registry_cache_is_kept_and_uses_no_set() {
        let deps = format!("deps-{}", "a".repeat(32));
        let tags = vec![
            image(&deps, "sha256:d1", &["sha256:l1"], Some(1)),
            image(CACHE_TAG, "sha256:c1", &["sha256:l1", "sha256:l2"], Some(2)),
        ];
        let decisions = decide(&tags, 0);
        assert_eq!(decisions.len(), 1);
        assert!(decisions[0].removed(), "{decisions:?}");
        assert!(
            decisions
                .iter()
                .all(|d| !d.tags.contains(&CACHE_TAG.to_string()))
        );
    }

    #[test]
    fn an_unused_set_goes_and_a_used_one_stays() {
        let tags = [
            image(K1, "sha256:d1", &["base", "pkgs1"], Some(1)),
            image(K2, "sha256:d2", &["base", "pkgs2"], Some(2)),
            image(K3, "sha256:d3", &["base", "pkgs3"], Some(3)),
            // Appended to K2 by the fast path, recognised by its layers (no label).
            image("v2", "sha256:i2", &["base", "pkgs2", "src"], Some(4)),
            // Names K3 in its label (a full build: its layers are its own).
            labelled(
                image("v3", "sha256:i3", &["base", "other", "src"], Some(5)),
                K3,
            ),
            // Labelled with K3 too, and its layers also start with K1's (K1 and K3 differ
            // only in their config, say): the label decides.
            labelled(
                image("v3b", "sha256:i3b", &["base", "pkgs1", "src"], Some(6)),
                K3,
            ),
        ];
        let d = decide(&tags, 0);
        assert_eq!(verdict(&d, K1), &removes(&["sha256:d1"]));
        assert_eq!(
            verdict(&d, K2),
            &Verdict::Keep {
                because: Kept::UsedBy {
                    uses: vec![Use {
                        tag: "v2".into(),
                        by: UseKind::Layers
                    }]
                }
            }
        );
        assert_eq!(
            verdict(&d, K3),
            &Verdict::Keep {
                because: Kept::UsedBy {
                    uses: vec![
                        Use {
                            tag: "v3".into(),
                            by: UseKind::Label
                        },
                        Use {
                            tag: "v3b".into(),
                            by: UseKind::Label
                        }
                    ]
                }
            }
        );
        assert_eq!(d.len(), 3, "image tags are not decided on: never removed");
    }

    #[test]
    fn a_copy_of_a_dependency_image_uses_no_set() {
        // K1 and K2 differ in their config only (same layers); `copy` is K2's image pushed
        // under another tag with another config digest (say, converted): its layers start
        // with both, but it is a dependency image, not an image built on one.
        let mut copy = image("copy", "sha256:c", &["base", "pkgs"], Some(3));
        if let Ok(t) = &mut copy.target {
            t.is_dependency = true;
        }
        let tags = [
            image(K1, "sha256:d1", &["base", "pkgs"], Some(1)),
            image(K2, "sha256:d2", &["base", "pkgs"], Some(2)),
            copy,
        ];
        assert!(decide(&tags, 0).iter().all(SetDecision::removed));
    }

    #[test]
    fn keep_n_keeps_the_newest_unused_sets_and_unknown_times_go_first() {
        let tags = [
            image(K1, "sha256:d1", &["a"], Some(100)),
            image(K2, "sha256:d2", &["b"], Some(300)),
            image(K3, "sha256:d3", &["c"], None),
        ];
        let d = decide(&tags, 1);
        assert_eq!(
            verdict(&d, K2),
            &Verdict::Keep {
                because: Kept::Recent { keep: 1 }
            }
        );
        assert!(d.iter().filter(|s| s.set != K2).all(SetDecision::removed));
        let d = decide(&tags, 2);
        assert!(!d.iter().find(|s| s.set == K1).unwrap().removed());
        assert!(d.iter().find(|s| s.set == K3).unwrap().removed());
        assert!(decide(&tags, 5).iter().all(|s| !s.removed()));
    }

    #[test]
    fn keep_n_counts_only_sets_that_could_go() {
        // K3 is the newest unused set, but a tag of the user's names it: kept anyway, it
        // does not take --keep 1's place, which goes to K1.
        let tags = [
            image(K1, "sha256:d1", &["a"], Some(1)),
            image(K2, "sha256:d2", &["b"], Some(0)),
            image(K3, "sha256:d3", &["c"], Some(9)),
            image("mine", "sha256:d3", &["c"], Some(9)),
        ];
        let d = decide(&tags, 1);
        assert!(shares_digest(&d, K3));
        assert_eq!(
            verdict(&d, K1),
            &Verdict::Keep {
                because: Kept::Recent { keep: 1 }
            }
        );
        assert!(d.iter().find(|s| s.set == K2).unwrap().removed());

        // A set kept by --keep protects a set on the same digest.
        let tags = [
            image(K1, "sha256:same", &["a"], Some(5)),
            image(K2, "sha256:same", &["a"], Some(1)),
        ];
        let d = decide(&tags, 1);
        assert!(d.iter().all(|s| !s.removed()), "{d:?}");
    }

    #[test]
    fn a_digest_another_tag_names_is_never_deleted() {
        // `mine` is a tag of the user's on the same manifest as the unused K1: deleting
        // K1's digest would delete `mine`.
        let tags = [
            image(K1, "sha256:shared", &["base", "pkgs1"], Some(1)),
            image("mine", "sha256:shared", &["base", "pkgs1"], Some(1)),
            image(K2, "sha256:d2", &["base", "pkgs2"], Some(2)),
        ];
        let d = decide(&tags, 0);
        assert_eq!(verdict(&d, K1), &kept_sharing("sha256:shared", "mine"));
        assert!(d.iter().find(|s| s.set == K2).unwrap().removed());
        // The manifest as an entry of a kept index.
        let tags = [
            image(K1, "sha256:shared", &["base", "pkgs1"], Some(1)),
            index(
                "multi",
                "sha256:idx",
                vec![
                    manifest("sha256:shared", &[]),
                    manifest("sha256:arm", &["x"]),
                ],
                Some(1),
            ),
        ];
        let d = decide(&tags, 0);
        assert_eq!(verdict(&d, K1), &kept_sharing("sha256:shared", "multi"));
    }

    #[test]
    fn sets_sharing_a_digest_with_a_kept_set_are_kept_transitively() {
        // K3 is used; K2 names K3's digest; K1 names K2's other digest via an index.
        let k2_platform = format!("{K2}-linux-arm64");
        let tags = [
            image(K3, "sha256:d3", &["base", "p3"], Some(3)),
            labelled(image("v3", "sha256:i3", &["z"], Some(4)), K3),
            image(&k2_platform, "sha256:d3", &["base", "p3"], Some(2)),
            image(K2, "sha256:d2", &["base", "p2"], Some(2)),
            image(K1, "sha256:d2", &["base", "p2"], Some(1)),
        ];
        let d = decide(&tags, 0);
        assert!(shares_digest(&d, K2));
        assert_eq!(
            verdict(&d, K1),
            &kept_sharing("sha256:d2", K2),
            "kept because K2 is kept, found on the second pass"
        );
    }

    #[test]
    fn an_index_goes_before_its_manifests_and_with_its_platform_tags() {
        let arm = format!("{K1}-linux-arm64");
        let amd = format!("{K1}-linux-amd64");
        let tags = [
            index(
                K1,
                "sha256:idx",
                vec![
                    manifest("sha256:amd", &["base-amd", "p-amd"]),
                    manifest("sha256:arm", &["base-arm", "p-arm"]),
                ],
                Some(1),
            ),
            image(&arm, "sha256:arm", &["base-arm", "p-arm"], Some(1)),
            image(&amd, "sha256:amd", &["base-amd", "p-amd"], Some(1)),
        ];
        let d = decide(&tags, 0);
        assert_eq!(
            verdict(&d, K1),
            &removes(&["sha256:idx", "sha256:amd", "sha256:arm"])
        );
        assert_eq!(d[0].tags, vec![K1.to_string(), amd, arm]);

        // An image index whose arm64 image was appended to the arm64 dependency image uses
        // the whole set.
        let mut used = tags.to_vec();
        used.push(index(
            "v1",
            "sha256:img-idx",
            vec![
                manifest("sha256:img-amd", &["base-amd", "other", "src"]),
                manifest("sha256:img-arm", &["base-arm", "p-arm", "src"]),
            ],
            Some(2),
        ));
        assert!(!decide(&used, 0)[0].removed());
    }

    #[test]
    fn an_entry_a_kept_index_names_stays_when_its_own_index_goes() {
        // A dependency index pushed without platform tags (uv builds): its entries have no
        // tag; one of them, a manifest without layers (which no layer match can see), is
        // also an entry of a kept index.
        let tags = [
            index(
                K1,
                "sha256:idx",
                vec![manifest("sha256:a", &["x"]), manifest("sha256:b", &[])],
                Some(1),
            ),
            index(
                "odd",
                "sha256:other-idx",
                vec![manifest("sha256:b", &[]), manifest("sha256:c", &["z"])],
                Some(1),
            ),
        ];
        let d = decide(&tags, 0);
        assert_eq!(verdict(&d, K1), &removes(&["sha256:idx", "sha256:a"]));
    }

    #[test]
    fn an_unreadable_image_tag_keeps_every_unused_set() {
        let tags = [
            image(K1, "sha256:d1", &["a"], Some(1)),
            image(K2, "sha256:d2", &["b"], Some(2)),
            image("v2", "sha256:i2", &["b", "src"], Some(3)),
            unreadable("v9"),
        ];
        let d = decide(&tags, 0);
        assert!(matches!(
            verdict(&d, K1),
            Verdict::Keep {
                because: Kept::CannotTell { tag, .. }
            } if tag == "v9"
        ));
        assert!(matches!(
            verdict(&d, K2),
            Verdict::Keep {
                because: Kept::UsedBy { .. }
            }
        ));
        assert!(d.iter().all(|s| !s.removed()));
    }

    #[test]
    fn an_unreadable_dependency_tag_keeps_its_set() {
        let arm = format!("{K1}-linux-arm64");
        let tags = [image(K1, "sha256:d1", &["a"], Some(1)), unreadable(&arm)];
        assert!(matches!(
            verdict(&decide(&tags, 0), K1),
            Verdict::Keep {
                because: Kept::Unreadable { .. }
            }
        ));
    }

    #[test]
    fn freed_counts_only_blobs_no_kept_manifest_names_each_once() {
        let tags = [
            // K1 and K2 share "p" and the base with the kept image; K1 and K2 share "q".
            image(K1, "sha256:d1", &["base", "p", "q"], Some(1)),
            image(K2, "sha256:d2", &["base", "p", "q", "r"], Some(2)),
            image("v", "sha256:v", &["base", "p", "s"], Some(3)),
        ];
        let d = decide(&tags, 0);
        let k1 = d.iter().find(|s| s.set == K1).unwrap();
        let k2 = d.iter().find(|s| s.set == K2).unwrap();
        assert!(k1.removed() && k2.removed());
        // K1: q (10) + its config (1); K2: r (10) + its config (1), q counted in K1.
        assert_eq!((k1.size, k1.freed), (31, 11));
        assert_eq!((k2.size, k2.freed), (41, 11));
    }

    #[test]
    fn empty_dependency_images_match_nothing() {
        let tags = [
            image(K1, "sha256:d1", &[], Some(1)),
            image("v", "sha256:v", &["a"], Some(2)),
        ];
        assert!(decide(&tags, 0)[0].removed());
    }
}
