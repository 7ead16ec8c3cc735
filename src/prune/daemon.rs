//! The daemon part of `imagespec prune`: dockerd's dependency images (`deps-*` tags, made
//! when dockerd builds a dependency image before pushing it) that no local image of their
//! repository uses, decided by [`super::decide`] as in the registry (an image uses the set
//! its inputs label names, or, without a label, those whose layers it starts with; image
//! ids stand for digests), and the
//! working tags (`<deps tag>-unlabelled-<pid>-<n>`) of builds that ended: tagged more than
//! a day ago and not being made by a run on this machine ([`crate::lock::is_held`]). Tags
//! are removed without force: dockerd refuses while a container uses the image, and an
//! image stays while another tag names it.

use super::decide::{self, Manifest, Tagged, Target, Unreadable};
use super::{Item, Note, Place, PruneOptions, Report};
use crate::builders::docker::{DockerDaemon, ImageLayers, LocalImage};
use crate::explain::{INPUTS_LABEL, Inputs};
use crate::oci::ImageRef;
use crate::oci::reference::Repository;
use crate::plan::DEPENDENCY_LABEL;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How long a working tag may live before it counts as left behind.
const WORKING_TAG_AGE: i64 = 24 * 3600;

/// The dependency set of a build's working tag (`<deps tag>-unlabelled-<pid>-<n>`), if
/// `tag` is one.
pub fn working_tag_set(tag: &str) -> Option<&str> {
    let (deps, _) = tag.split_once(decide::WORKING_TAG_MARK)?;
    decide::dependency_set(deps)
}

/// Whether a working tag last tagged at `tagged` (Unix seconds) is left behind at `now`.
pub fn working_tag_is_stale(tagged: i64, now: i64, held: bool) -> bool {
    !held && now - tagged > WORKING_TAG_AGE
}

/// Prunes the dependency images of `repositories` in dockerd (every repository when
/// empty), into `report`.
pub async fn prune(repositories: &[&Repository], options: &PruneOptions, report: &mut Report) {
    let note = |group: &str, message: String, cannot_tell: bool| Note {
        place: Place::Daemon,
        group: group.to_string(),
        message,
        cannot_tell,
    };
    let daemon = match DockerDaemon::connect(options.timeouts).await {
        Ok(d) => d,
        Err(e) => {
            report.notes.push(note("", format!("skipped: {e}"), false));
            return;
        }
    };
    let images = match daemon.images().await {
        Ok(images) => images,
        Err(e) => {
            report.notes.push(note(daemon.host(), e.to_string(), true));
            return;
        }
    };
    let by_repository = tags_by_repository(&images, repositories);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (repository, (named, tags)) in by_repository {
        if !tags
            .iter()
            .any(|(t, _)| decide::dependency_set(t).is_some())
        {
            continue;
        }
        let mut layers: HashMap<&str, Result<ImageLayers, Unreadable>> = HashMap::new();
        for (_, image) in &tags {
            if !layers.contains_key(image.id.as_str()) {
                let got = daemon.image_layers(&image.id).await;
                layers.insert(&image.id, got.map_err(|e| Unreadable::Daemon(Arc::new(e))));
            }
        }
        let mut tagged = Vec::new();
        let mut items = Vec::new();
        for (tag, image) in &tags {
            let full = format!("{repository}:{tag}");
            let facts = layers[image.id.as_str()].clone();
            if let Some(set) = working_tag_set(tag) {
                let working = format!("{repository}:{set}").parse();
                let held = working.is_ok_and(|image| crate::lock::is_held(&image));
                let last = facts
                    .as_ref()
                    .ok()
                    .and_then(|f| f.last_tagged)
                    .unwrap_or(image.created);
                if working_tag_is_stale(last, now, held) {
                    items.push(working_item(&repository, &full, image, last));
                    continue;
                }
                // A build is at it: its image uses the set (by its layers: it has no
                // label yet), like any image tag.
            }
            let target = facts.map(|facts| Target {
                digest: image.id.clone(),
                index: false,
                manifests: vec![Manifest {
                    digest: image.id.clone(),
                    config: None,
                    layers: facts
                        .layers
                        .into_iter()
                        .map(|digest| decide::Blob { digest, size: 0 })
                        .collect(),
                }],
                created: Some(image.created),
                dependency_images: dependency_tag(image, &named).into_iter().collect(),
                is_dependency: image.labels.contains_key(DEPENDENCY_LABEL),
            });
            tagged.push(Tagged {
                tag: tag.clone(),
                target,
            });
        }
        let decisions = decide::decide(&tagged, options.keep);
        items.extend(set_items(&repository, &tags, &decisions));
        if !options.dry_run {
            remove(&daemon, &mut items).await;
        }
        report.items.extend(items);
    }
}

/// The items of the dependency sets `decisions` decided on, in dockerd's terms: full tags,
/// image ids, and what removing a tag frees.
fn set_items(
    repository: &str,
    tags: &[(String, &LocalImage)],
    decisions: &[decide::SetDecision],
) -> Vec<Item> {
    let sizes: HashMap<&str, u64> = tags.iter().map(|(_, i)| (i.id.as_str(), i.size)).collect();
    let mut sets = super::set_items(Place::Daemon, repository, decisions, |d| {
        let ids: std::collections::BTreeSet<&str> = tags
            .iter()
            .filter(|(t, _)| d.tags.contains(t))
            .map(|(_, i)| i.id.as_str())
            .collect();
        Some(ids.iter().map(|id| sizes[id]).sum())
    });
    for item in &mut sets {
        // In dockerd tags are removed, not ids: list the full tags.
        item.tags = item
            .tags
            .iter()
            .map(|t| format!("{repository}:{t}"))
            .collect();
        item.digests = tags
            .iter()
            .filter(|(t, _)| item.tags.contains(&format!("{repository}:{t}")))
            .map(|(_, i)| i.id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if item.remove {
            item.reason = "used by no local image of the repository".into();
        }
        // dockerd removes tags, not images: a shared image only loses a name.
        if let Some(decide::Kept::SharesDigest { tag, .. }) = &item.kept {
            item.reason = format!(
                "unused, but the kept tag {tag} names the same image (removing this tag \
                     would free nothing)"
            );
        }
    }
    sets
}

/// Removes the tags of the `items` to remove (the first refusal stops an item's tags).
async fn remove(daemon: &DockerDaemon, items: &mut [Item]) {
    for item in items.iter_mut().filter(|i| i.remove) {
        let tags = if item.tags.is_empty() {
            vec![item.what.clone()]
        } else {
            item.tags.clone()
        };
        let mut failed = None;
        for tag in &tags {
            if let Err(e) = daemon.remove_tag(tag).await {
                failed = Some(e);
                break;
            }
        }
        item.done = failed.is_none();
        item.error = failed.map(|e| e.to_string());
    }
}

/// A repository's local tags (tag, image), under the repository's name.
type LocalTags<'i> = BTreeMap<String, (Repository, Vec<(String, &'i LocalImage)>)>;

/// The tags of `images` in `repositories` (every repository when empty), by repository
/// (in the order of its name).
fn tags_by_repository<'i>(images: &'i [LocalImage], repositories: &[&Repository]) -> LocalTags<'i> {
    let mut by_repository: BTreeMap<String, (Repository, Vec<_>)> = BTreeMap::new();
    for image in images {
        for full in &image.tags {
            // dockerd's names are input: one that is no image reference is none of ours.
            let Ok(named) = full.parse::<ImageRef>() else {
                continue;
            };
            let Some(tag) = named.tag() else { continue };
            if repositories.is_empty() || repositories.contains(&named.name()) {
                by_repository
                    .entry(named.name().to_string())
                    .or_insert_with(|| (named.name().clone(), Vec::new()))
                    .1
                    .push((tag.to_string(), image));
            }
        }
    }
    by_repository
}

/// The dependency tag (in `repository`) the inputs label of `image` names.
fn dependency_tag(image: &LocalImage, repository: &Repository) -> Option<String> {
    let label = image.labels.get(INPUTS_LABEL)?;
    let dependency = Inputs::from_label(label).ok()?.dependency_image?;
    super::registry::dependency_tag_in(&dependency, repository)
}

fn working_item(repository: &str, full: &str, image: &LocalImage, tagged: i64) -> Item {
    Item {
        place: Place::Daemon,
        group: repository.to_string(),
        what: full.to_string(),
        kind: "working tag".into(),
        tags: vec![],
        digests: vec![image.id.clone()],
        created: super::rfc3339(image.created),
        size: Some(image.size),
        freed: None,
        remove: true,
        reason: format!(
            "a build's working tag, tagged {} and not being built here",
            super::rfc3339(tagged).unwrap_or_else(|| "long ago".into())
        ),
        kept: None,
        done: false,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tags_are_grouped_by_repository_as_docker_names_them() {
        let image = LocalImage {
            id: "sha256:1".into(),
            tags: vec![
                "localhost:5000/app:deps-1".into(),
                "localhost:5000/app:v1".into(),
                "other:deps-2".into(),
                "not a name".into(),
                "<none>:<none>".into(),
            ],
            labels: Default::default(),
            created: 0,
            size: 0,
        };
        let images = [image];
        let all = tags_by_repository(&images, &[]);
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(names, ["localhost:5000/app", "other"]);
        let app = Repository::new(None, "localhost:5000/app").unwrap();
        let only = tags_by_repository(&images, &[&app]);
        assert_eq!(only.len(), 1);
        let (named, tags) = &only["localhost:5000/app"];
        assert_eq!(named, &app);
        let tags: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tags, ["deps-1", "v1"]);
    }

    #[test]
    fn working_tags_go_a_day_after_their_build_unless_a_run_holds_them() {
        let key = "deps-0123456789abcdef0123456789abcdef";
        assert_eq!(
            working_tag_set(&format!("{key}-unlabelled-4242-0badcafe")),
            Some(key)
        );
        assert_eq!(
            working_tag_set(&format!("{key}-linux-arm64-unlabelled-4242-0badcafe")),
            Some(key)
        );
        assert_eq!(working_tag_set(key), None);
        assert_eq!(working_tag_set("v1-unlabelled-1-2"), None);
        let now = 1_000_000;
        assert!(!working_tag_is_stale(now - 3600, now, false));
        assert!(working_tag_is_stale(now - 2 * 86400, now, false));
        assert!(!working_tag_is_stale(now - 2 * 86400, now, true));
    }
}
