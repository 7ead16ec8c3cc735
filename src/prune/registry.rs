//! The registry part of `imagespec prune`: what every tag of a repository points at (its
//! manifest, an index's entries, each image's config: when it was made and which
//! dependency image its inputs label names), read concurrently, then the deletions
//! [`super::decide`] chose, by digest.
//!
//! Reading is bounded to a few requests at a time and every request has the client's
//! timeouts and retries ([`crate::registry::client`]). Just before deleting, the tags are
//! listed again and any tag pushed meanwhile is read and decided on with the others: a tag
//! that appeared on a digest about to go (or an image just appended to a dependency image
//! about to go) keeps it.

use super::decide::{self, Blob, Manifest, SetDecision, Tagged, Target, Unreadable, Verdict};
use crate::explain::{INPUTS_LABEL, Inputs};
use crate::oci::ImageRef;
use crate::oci::reference::{Repository, Tag};
use crate::plan::DEPENDENCY_LABEL;
use crate::registry::client::{RawManifest, RegistryClient, RegistryError};
use futures_util::{StreamExt, stream};
use oci_client::manifest::{OciImageManifest, OciManifest};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Requests in flight at once while reading a repository.
const CONCURRENT: usize = 8;

/// What an image config tells prune.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFacts {
    /// Unix seconds: the config's `created` or its newest `history` entry, the later one.
    pub created: Option<i64>,
    /// The dependency image (`registry/repository:deps-…`) its inputs label names.
    pub dependency_image: Option<ImageRef>,
    /// It carries imagespec's dependency label: a dependency image.
    pub is_dependency: bool,
}

/// Unix seconds of an RFC 3339 time (`2026-12-01T14:18:52.123456789Z`).
pub fn unix_seconds(time: &str) -> Option<i64> {
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// Reads an image config (JSON). A config that is no image config (an artifact's) tells
/// nothing, which is not an error.
pub fn config_facts(config: &serde_json::Value) -> ConfigFacts {
    let created = config
        .get("created")
        .into_iter()
        .chain(
            config
                .get("history")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|h| h.get("created")),
        )
        .filter_map(serde_json::Value::as_str)
        .filter_map(unix_seconds)
        .max();
    let labels = config.pointer("/config/Labels");
    let is_dependency = labels.and_then(|l| l.get(DEPENDENCY_LABEL)).is_some();
    let dependency_image = labels
        .and_then(|l| l.get(INPUTS_LABEL))
        .and_then(serde_json::Value::as_str)
        .and_then(|label| Inputs::from_label(label).ok())
        .and_then(|inputs| inputs.dependency_image);
    ConfigFacts {
        created,
        dependency_image,
        is_dependency,
    }
}

/// The tag of `dependency_image` when it is in `repository` (compared without the
/// registry host: `localhost:5000` and `127.0.0.1:5000` name one registry, and a label
/// written on another machine may name either).
pub fn dependency_tag_in(dependency_image: &ImageRef, repository: &Repository) -> Option<String> {
    let same = dependency_image.repository() == repository.path();
    same.then(|| dependency_image.tag().map(str::to_string))?
}

fn blob(d: &oci_client::manifest::OciDescriptor) -> Blob {
    Blob {
        digest: d.digest.clone(),
        size: u64::try_from(d.size).unwrap_or(0),
    }
}

fn manifest_of(digest: &str, m: &OciImageManifest) -> Manifest {
    Manifest {
        digest: digest.to_string(),
        config: Some(blob(&m.config)),
        layers: m.layers.iter().map(blob).collect(),
    }
}

fn unreadable(e: RegistryError) -> Unreadable {
    Unreadable::Registry(Arc::new(e))
}

/// Lists the tags of `repository` and reads what each points at.
pub async fn gather(
    client: &RegistryClient,
    repository: &Repository,
) -> Result<Vec<Tagged>, RegistryError> {
    let tags = client.tags(repository).await?;
    Ok(read_tags(client, repository, tags).await)
}

/// The manifest `tag` of `repository` names; `None` when it is gone (or, the registry's
/// tag list being input, when the name is no tag).
async fn read_top(
    client: &RegistryClient,
    repository: &Repository,
    tag: &str,
) -> Result<Option<RawManifest>, Unreadable> {
    let Ok(tag) = Tag::parse(tag) else {
        return Ok(None);
    };
    match client.manifest(&repository.with_tag(tag)).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(unreadable(e)),
    }
}

/// What each of `tags` points at. A tag gone meanwhile is left out; one that cannot be
/// read says why.
pub async fn read_tags(
    client: &RegistryClient,
    repository: &Repository,
    tags: Vec<String>,
) -> Vec<Tagged> {
    // What is asked of the repository itself (manifests and blobs by digest).
    let whole = &ImageRef::from(repository.clone());
    // The manifest each tag names.
    let tops: Vec<(String, Result<Option<RawManifest>, Unreadable>)> = stream::iter(tags)
        .map(|tag| async move {
            let got = read_top(client, repository, &tag).await;
            (tag, got)
        })
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;

    // The entries of indexes, each read once.
    let entries: BTreeSet<String> = tops
        .iter()
        .filter_map(|(_, m)| match &m.as_ref().ok()?.as_ref()?.manifest {
            OciManifest::ImageIndex(index) => {
                Some(index.manifests.iter().map(|e| e.digest.clone()))
            }
            OciManifest::Image(_) => None,
        })
        .flatten()
        .collect();
    let entries: HashMap<String, Result<OciImageManifest, Unreadable>> = stream::iter(entries)
        .map(|digest| async move {
            let got = match client.manifest_by_digest(whole, &digest).await {
                Ok(RawManifest {
                    manifest: OciManifest::Image(m),
                    ..
                }) => Ok(m),
                Ok(_) => Err(Unreadable::NestedIndex {
                    digest: digest.clone(),
                }),
                Err(e) => Err(unreadable(e)),
            };
            (digest, got)
        })
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;

    // Every image's config, each read once.
    let images_of = |raw: &RawManifest| -> Vec<(String, Result<OciImageManifest, Unreadable>)> {
        match &raw.manifest {
            OciManifest::Image(m) => vec![(raw.digest.to_string(), Ok(m.clone()))],
            OciManifest::ImageIndex(index) => index
                .manifests
                .iter()
                .map(|e| {
                    let m = entries.get(&e.digest).cloned().unwrap_or_else(|| {
                        Err(Unreadable::NotRead {
                            digest: e.digest.clone(),
                        })
                    });
                    (e.digest.clone(), m)
                })
                .collect(),
        }
    };
    let configs: BTreeSet<String> = tops
        .iter()
        .filter_map(|(_, m)| m.as_ref().ok()?.as_ref())
        .flat_map(images_of)
        .filter_map(|(_, m)| m.ok().map(|m| m.config.digest))
        .collect();
    let configs: HashMap<String, Result<ConfigFacts, Unreadable>> = stream::iter(configs)
        .map(|digest| async move {
            let got = match client.blob(whole, &digest, None).await {
                Ok(bytes) => Ok(serde_json::from_slice(&bytes)
                    .map(|v| config_facts(&v))
                    .unwrap_or_default()),
                Err(e) => Err(unreadable(e)),
            };
            (digest, got)
        })
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;

    let mut out: Vec<Tagged> = tops
        .into_iter()
        .filter_map(|(tag, top)| {
            let target = match top {
                Ok(None) => return None,
                Ok(Some(raw)) => target_of(&tag, repository, &raw, &images_of(&raw), &configs),
                Err(e) => Err(e),
            };
            Some(Tagged { tag, target })
        })
        .collect();
    out.sort_by(|a, b| a.tag.cmp(&b.tag));
    out
}

/// What `tag` points at, from its manifest, its images and their configs. An image tag
/// whose config cannot be read cannot be told apart (its label is unknown); a dependency
/// tag only loses its time.
fn target_of(
    tag: &str,
    repository: &Repository,
    raw: &RawManifest,
    images: &[(String, Result<OciImageManifest, Unreadable>)],
    configs: &HashMap<String, Result<ConfigFacts, Unreadable>>,
) -> Result<Target, Unreadable> {
    let dependency_tag = decide::dependency_set(tag).is_some();
    let mut manifests = Vec::new();
    let mut created = None;
    let mut dependency_images = Vec::new();
    let mut is_dependency = false;
    for (digest, image) in images {
        let image = image.as_ref().map_err(Clone::clone)?;
        manifests.push(manifest_of(digest, image));
        match configs.get(&image.config.digest) {
            Some(Ok(facts)) => {
                created = created.max(facts.created);
                is_dependency |= facts.is_dependency;
                if let Some(tag) = facts
                    .dependency_image
                    .as_ref()
                    .and_then(|d| dependency_tag_in(d, repository))
                {
                    dependency_images.push(tag);
                }
            }
            Some(Err(e)) if !dependency_tag => return Err(e.clone()),
            _ => {}
        }
    }
    Ok(Target {
        digest: raw.digest.to_string(),
        index: matches!(raw.manifest, OciManifest::ImageIndex(_)),
        manifests,
        created,
        dependency_images,
        is_dependency,
    })
}

/// How the deletions of one set went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// The digests deleted (or, in a dry run, that would be).
    pub digests: Vec<String>,
    /// Why the set's deletions stopped.
    pub error: Option<String>,
}

/// Deletes what `decisions` remove from `repository`, after reading the tags pushed since
/// `known` was read and deciding again with them: a set the new decision keeps is kept
/// (its decision is replaced). Returns how each removed set's deletions went. The first
/// failure stops the repository's deletions (a registry refusing one refuses all).
pub async fn delete(
    client: &RegistryClient,
    repository: &Repository,
    known: &[Tagged],
    keep: usize,
    decisions: &mut [SetDecision],
) -> Result<BTreeMap<String, Deleted>, RegistryError> {
    let now = client.tags(repository).await?;
    let old: BTreeSet<&str> = known.iter().map(|t| t.tag.as_str()).collect();
    let new: Vec<String> = now
        .into_iter()
        .filter(|t| !old.contains(t.as_str()))
        .collect();
    if !new.is_empty() {
        let mut all = known.to_vec();
        all.extend(read_tags(client, repository, new).await);
        let again = decide::decide(&all, keep);
        for d in decisions.iter_mut() {
            if let Some(fresh) = again.iter().find(|a| a.set == d.set)
                && d.removed()
                && fresh.verdict != d.verdict
            {
                *d = fresh.clone();
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut failed = false;
    for d in decisions.iter() {
        let Verdict::Remove { digests } = &d.verdict else {
            continue;
        };
        let mut done = Deleted::default();
        for digest in digests {
            if failed {
                done.error = Some("not tried: an earlier deletion failed".into());
                break;
            }
            match client.delete_manifest(repository, digest).await {
                Ok(_) => done.digests.push(digest.clone()),
                Err(e) => {
                    done.error = Some(e.detail());
                    failed = true;
                    break;
                }
            }
        }
        out.insert(d.set.clone(), done);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_is_the_later_of_the_config_and_its_history() {
        let config = json!({
            "created": "2026-01-01T00:00:00Z",
            "history": [
                {"created": "2025-12-31T00:00:00Z"},
                {"created": "2026-02-01T10:00:00.123456789Z"},
                {"created_by": "no time"}
            ]
        });
        assert_eq!(
            config_facts(&config).created,
            unix_seconds("2026-02-01T10:00:00Z")
        );
        assert_eq!(config_facts(&json!({})).created, None);
        assert_eq!(config_facts(&json!({"created": "yesterday"})).created, None);
    }

    #[test]
    fn the_inputs_label_names_the_dependency_image() {
        let inputs = Inputs {
            v: 1,
            image: "localhost:5000/app:abc".parse().unwrap(),
            fields: Default::default(),
            files: Default::default(),
            files_omitted: None,
            dependency_image: Some("localhost:5000/app:deps-1".parse().unwrap()),
        };
        let config = json!({"config": {"Labels": {INPUTS_LABEL: inputs.to_label()}}});
        assert_eq!(
            config_facts(&config)
                .dependency_image
                .map(|d| d.to_string())
                .as_deref(),
            Some("localhost:5000/app:deps-1")
        );
        assert!(!config_facts(&config).is_dependency);
        let deps = json!({"config": {"Labels": {DEPENDENCY_LABEL: "1000 0 0 700"}}});
        assert!(config_facts(&deps).is_dependency);
        // No label, a label that is not a record: nothing, and no error.
        assert_eq!(config_facts(&json!({"config": {}})).dependency_image, None);
        let garbage = json!({"config": {"Labels": {INPUTS_LABEL: "{"}}});
        assert_eq!(config_facts(&garbage).dependency_image, None);
    }

    #[test]
    fn a_dependency_image_is_ours_when_its_repository_path_is() {
        let ours = &Repository::new(None, "127.0.0.1:5000/team/app").unwrap();
        let dependency_tag_in =
            |image: &str, ours| dependency_tag_in(&image.parse().unwrap(), ours);
        assert_eq!(
            dependency_tag_in("localhost:5000/team/app:deps-1", ours).as_deref(),
            Some("deps-1")
        );
        assert_eq!(
            dependency_tag_in("127.0.0.1:5000/team/app:deps-1", ours).as_deref(),
            Some("deps-1")
        );
        assert_eq!(
            dependency_tag_in("localhost:5000/team/other:deps-1", ours),
            None
        );
        assert_eq!(dependency_tag_in("localhost:5000/team/app", ours), None);
    }
}
