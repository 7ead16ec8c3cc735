//! A dependency image made on the remote builder, for the fast path: the source layer is
//! appended to it in the registry afterwards, as to one dockerd made. That needs the
//! `DEPENDENCY_LABEL` facts (the flytekit user's uid, /root's owner and mode), which only the
//! built image knows; dockerd reads them from a container, a remote builder in three solves,
//! none of which sends an image over this machine's link:
//!
//! 1. the dependency Dockerfile, pushed by digest only (no tag moves yet), with the cache;
//! 2. a small solve that runs the facts script in that image and sends its one-line output
//!    back through the session (BuildKit's `tar` exporter, [`crate::builders::session`]'s
//!    `FileSend`);
//! 3. a `LABEL` on that image (no layer), pushed under the dependency tag: per platform
//!    through a stage of its own when there are several (`FROM p-$TARGETOS-$TARGETARCH`).

use super::{RemoteBuildkit, RemoteSolve};
use crate::builders::BackendError;
use crate::builders::docker::{DEPENDENCY_FACTS_SCRIPT, dependency_facts};
use crate::builders::session::{self, Exporter};
use crate::oci::{Digest, ImageRef, Platform, Platforms};
use crate::plan::{BuildPlan, DEPENDENCY_LABEL};
use crate::progress::Progress;
use crate::render::steps::StepLabels;

/// Where the facts file is written in the image and found in the tar sent back.
const FACTS_FILE: &str = "imagespec-dependency-facts";

/// The Dockerfile of solve 2: the facts of `image`, as root, in a file of their own.
fn facts_dockerfile(image: &ImageRef) -> String {
    format!(
        "FROM {image} AS deps\nUSER 0\nRUN {DEPENDENCY_FACTS_SCRIPT} > /tmp/{FACTS_FILE}\n\
         FROM scratch\nCOPY --from=deps /tmp/{FACTS_FILE} /{FACTS_FILE}\n"
    )
}

/// The Dockerfile of solve 3: `image` labelled with each platform's facts.
fn label_dockerfile(image: &ImageRef, facts: &[(Platform, String)]) -> String {
    if let [(_, one)] = facts {
        return format!(
            "FROM {image}\n{}",
            session::label_line(DEPENDENCY_LABEL, one)
        );
    }
    let mut text = String::new();
    for (platform, value) in facts {
        let stage = platform.tag_suffix();
        text.push_str(&format!("FROM {image} AS p-{stage}\n"));
        text.push_str(&session::label_line(DEPENDENCY_LABEL, value));
    }
    text.push_str("FROM p-${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-}${TARGETVARIANT}\n");
    text
}

/// Each platform's facts from the tar solve 2 sent back: one platform's file at the top,
/// several under `os_arch[_variant]/` (BuildKit's multi-platform tar layout).
fn facts_of(
    image: &ImageRef,
    tar_bytes: &[u8],
    platforms: &Platforms,
) -> Result<Vec<(Platform, String)>, BackendError> {
    let mut found = std::collections::HashMap::new();
    let unreadable = |e: std::io::Error| BackendError::Context(format!("{image}: {e}"));
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry
            .path()
            .map_err(unreadable)?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./").to_string();
        let Some(dir) = path.strip_suffix(FACTS_FILE) else {
            continue;
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).map_err(unreadable)?;
        found.insert(dir.trim_end_matches('/').to_string(), text);
    }
    let mut facts = Vec::new();
    for platform in platforms.iter() {
        let key = if platforms.several() {
            platform.as_str().replace('/', "_")
        } else {
            String::new()
        };
        let text = found.get(&key).ok_or_else(|| {
            BackendError::Context(format!(
                "{image}: the builder sent no facts for {platform} (`id`, `stat`)"
            ))
        })?;
        facts.push((platform.clone(), dependency_facts(image, text)?));
    }
    Ok(facts)
}

impl RemoteBuildkit {
    /// Builds `deps` (the dependency plan) for `platforms` on the builder, labelled with its
    /// facts and pushed by the builder under `deps.image`: the digest pushed.
    pub async fn build_dependency_image(
        &self,
        deps: &BuildPlan,
        platforms: &Platforms,
        progress: &Progress,
    ) -> Result<Digest, BackendError> {
        let digest = self.build_untagged(deps, platforms, progress).await?;
        let unlabelled = ImageRef::from(deps.image.name().clone()).with_digest(&digest);
        let channel = self.connect(platforms).await?;
        let dockerfile = facts_dockerfile(&unlabelled);
        let read = self.small_solve(
            &dockerfile,
            platforms,
            Exporter::Tar,
            "read the flytekit user and /root",
        );
        let solved = self.run(&channel, read?, progress).await?;
        let facts = facts_of(&deps.image, &solved.received, platforms)?;

        let dockerfile = label_dockerfile(&unlabelled, &facts);
        let exporter = Exporter::Push {
            image: deps.image.to_string(),
        };
        let label = format!("label {}", deps.image);
        let labelled = self.small_solve(&dockerfile, platforms, exporter, &label)?;
        let solved = self.run(&channel, labelled, progress).await?;
        self.digest_of(solved, &deps.image)
    }

    /// A solve of `dockerfile` alone (no files, no secrets, no cache), its steps shown as
    /// `label`.
    fn small_solve<'a>(
        &self,
        dockerfile: &str,
        platforms: &'a Platforms,
        exporter: Exporter,
        label: &str,
    ) -> Result<RemoteSolve<'a>, BackendError> {
        let context = session::dockerfile_only(dockerfile)
            .map_err(|e| BackendError::Context(e.to_string()))?;
        let steps: Vec<(&str, &str)> = dockerfile.lines().map(|l| (l, label)).collect();
        Ok(RemoteSolve {
            context,
            secrets: Vec::new(),
            registry_config: None,
            labels: &[],
            platforms,
            exporter,
            cache: Default::default(),
            steps: StepLabels::of(steps),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_platform_is_labelled_directly_several_through_a_stage_each() {
        let image: ImageRef = format!("r/a@sha256:{}", "1".repeat(64)).parse().unwrap();
        let platform = |p: &str| Platform::parse(p).unwrap();
        let one = label_dockerfile(
            &image,
            &[(platform("linux/amd64"), "1000 1000 0 700".into())],
        );
        assert_eq!(
            one,
            format!("FROM {image}\nLABEL org.imagespec.dependency-image=\"1000 1000 0 700\"\n")
        );
        let two = label_dockerfile(
            &image,
            &[
                (platform("linux/amd64"), "1000 1000 0 700".into()),
                (platform("linux/arm/v7"), "1001 1001 0 700".into()),
            ],
        );
        assert!(
            two.contains(&format!("FROM {image} AS p-linux-amd64\n")),
            "{two}"
        );
        assert!(
            two.contains(&format!("FROM {image} AS p-linux-arm-v7\n")),
            "{two}"
        );
        assert!(
            two.ends_with("FROM p-${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-}${TARGETVARIANT}\n")
        );
    }

    /// A tar as BuildKit's exporter sends it: `files` (path, text).
    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, path, text.as_bytes()).unwrap();
        }
        tar.into_inner().unwrap()
    }

    /// [`facts_of`] an image `r/a` whose exporter sent `tar`, built for `platforms`.
    fn facts_for(tar: &[u8], platforms: &str) -> Result<Vec<(String, String)>, BackendError> {
        let facts = facts_of(
            &"r/a".parse().unwrap(),
            tar,
            &Platforms::parse(platforms).unwrap(),
        )?;
        Ok(facts.into_iter().map(|(p, f)| (p.to_string(), f)).collect())
    }

    #[test]
    fn the_facts_are_read_per_platform_from_the_tar() {
        let one = tar_of(&[(FACTS_FILE, "1000 1000 0 700\n")]);
        let facts = facts_for(&one, "linux/amd64").unwrap();
        assert_eq!(
            facts,
            vec![("linux/amd64".to_string(), "1000 1000 0 700".to_string())]
        );
        let path_amd = format!("linux_amd64/{FACTS_FILE}");
        let path_arm = format!("linux_arm64/{FACTS_FILE}");
        let two = tar_of(&[
            (&path_amd, "1000 1000 0 700\n"),
            (&path_arm, "1000 1000 0 750\n"),
        ]);
        let facts = facts_for(&two, "linux/amd64,linux/arm64").unwrap();
        assert_eq!(
            facts[1],
            ("linux/arm64".to_string(), "1000 1000 0 750".to_string())
        );
        let missing = facts_for(&one, "linux/amd64,linux/arm64");
        assert!(missing.is_err());
        let garbage = tar_of(&[(FACTS_FILE, "id: flytekit: no such user\n")]);
        assert!(facts_for(&garbage, "linux/amd64").is_err());
    }
}
