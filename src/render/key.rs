//! The dependency key: a digest of everything that makes a plan's dependency image — the
//! platform, its Dockerfile as rendered here, and every context file's content — so that
//! two plans with the same key build the same dependency image, and the registry fast path
//! can reuse one it finds under `<repository>:deps-<key>`.
//!
//! Computed once per plan (it renders a Dockerfile and reads the lock files): the plan keeps
//! it with the fields it digests ([`BuildPlan::key_inputs`]), and its clones carry it; a
//! clone changed afterwards (another platform) computes its own.
//!
//! ```no_run
//! # use imagespec::{plan::{BuildPlan, RenderOptions}, tag};
//! let file = imagespec::load(std::path::Path::new("spec.toml"))?;
//! let (_, spec) = file.select(None)?;
//! let tag = tag::compute(spec, &Default::default())?;
//! let plan = BuildPlan::new(spec, &tag, &RenderOptions::default())?;
//! let deps = plan.dependencies(); // computes the key
//! assert!(deps.image.to_string().ends_with(&plan.dependency_key())); // reuses it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::plan::{BuildPlan, ContextFile};

impl BuildPlan {
    /// The dependency key of this plan (hex, 32 digits), computed the first time it is
    /// asked for, and again only if what it digests changed.
    pub fn dependency_key(&self) -> String {
        self.dependency_key_with(content_key)
    }

    /// The plan of the dependency image: [`BuildPlan::without_source`], named
    /// `<repository>:deps-<key>`.
    pub fn dependencies(&self) -> BuildPlan {
        self.dependencies_keyed(&self.dependency_key())
    }
}

/// A digest of everything that makes `plan`'s image: the Dockerfile, the platform and
/// every context file's content (hex, 32 digits).
fn content_key(plan: &BuildPlan) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"imagespec dependency image v1\0");
    hash.update(plan.platform.to_string().as_bytes());
    hash.update(b"\0");
    hash.update(super::dockerfile(plan).as_bytes());
    // The Dockerfile reads these from secrets: their hosts and paths count, their
    // credentials do not (a rotated token reuses the dependency image).
    for secret in &plan.index_secrets {
        hash.update(format!("\0index {} {}\0", secret.id, secret.redacted()).as_bytes());
    }
    let mut files: Vec<_> = plan.files.iter().collect();
    files.sort_by_key(|f| f.to());
    for f in files {
        hash.update(file_record(f));
    }
    hash.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the key digests of one context file: its path, then its content (a directory: its
/// path alone).
fn file_record(file: &ContextFile) -> Vec<u8> {
    match file {
        ContextFile::Copy { from, to } => {
            let mut record = format!("\0file {to}\0").into_bytes();
            // An unreadable file fails the build later, with its path; here it only
            // changes the key. A FIFO or device is never read (it fails later too).
            if let Ok(mut file) = crate::source::untrusted::open_regular(from) {
                let _ = std::io::Read::read_to_end(&mut file, &mut record);
            }
            record
        }
        ContextFile::Content { to, content } => format!("\0file {to}\0{content}").into_bytes(),
        ContextFile::Dir { to } => format!("\0dir {to}\0").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn a_file_is_recorded_by_its_path_and_content() {
        let content = ContextFile::Content {
            to: "requirements_uv.txt".into(),
            content: "six".into(),
        };
        assert_eq!(file_record(&content), b"\0file requirements_uv.txt\0six");
        let dir = ContextFile::Dir { to: "src".into() };
        assert_eq!(file_record(&dir), b"\0dir src\0");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("uv.lock"), "lock").unwrap();
        let copy = |from: PathBuf| ContextFile::Copy {
            from,
            to: "uv.lock".into(),
        };
        assert_eq!(
            file_record(&copy(tmp.path().join("uv.lock"))),
            b"\0file uv.lock\0lock"
        );
        // Unreadable: the path alone (the build fails later, with the path).
        assert_eq!(
            file_record(&copy(tmp.path().join("missing"))),
            b"\0file uv.lock\0"
        );
    }

    fn plan_of(spec: &str) -> BuildPlan {
        let file = crate::SpecFile::parse(Path::new("/p/spec.toml"), spec).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        BuildPlan::new(spec, &tag, &Default::default()).unwrap()
    }

    #[test]
    fn the_key_names_the_dependency_image() {
        let plan = plan_of("name = \"app\"\nregistry = \"localhost:5000\"\npackages = [\"six\"]\n");
        let key = plan.dependency_key();
        assert_eq!(key.len(), 32);
        assert_eq!(key, content_key(&plan.key_inputs()));
        // The dependency plan is named by it and is its own.
        let deps = plan.clone().dependencies();
        assert_eq!(
            deps.image.to_string(),
            format!("localhost:5000/app:deps-{key}")
        );
        assert_eq!(deps.dependency_key(), key);
        assert_eq!(deps.dependencies().image, deps.image);
        // Another spec, another key.
        let other = plan_of("name = \"app\"\nregistry = \"localhost:5000\"\npackages = [\"x\"]\n");
        assert_ne!(other.dependency_key(), key);
    }

    #[test]
    fn a_clone_given_another_platform_has_another_key() {
        let plan = plan_of("name = \"app\"\nregistry = \"localhost:5000\"\npackages = [\"six\"]\n");
        let key = plan.dependency_key();
        let mut arm = plan.clone();
        arm.platform = crate::oci::Platforms::parse("linux/arm64").unwrap();
        let arm_key = arm.dependency_key();
        assert_ne!(arm_key, key);
        assert_eq!(
            arm_key,
            plan_with_platform(&plan, "linux/arm64").dependency_key()
        );
        assert_ne!(arm.dependencies().image, plan.dependencies().image);
        // The original keeps its own.
        assert_eq!(plan.dependency_key(), key);
    }

    /// `plan` as planned afresh for `platform`: no key computed yet.
    fn plan_with_platform(plan: &BuildPlan, platform: &str) -> BuildPlan {
        let file = crate::SpecFile::parse(
            Path::new("/p/spec.toml"),
            &format!(
                "name = \"app\"\nregistry = \"localhost:5000\"\npackages = [\"six\"]\n\
                 platform = \"{platform}\"\n"
            ),
        )
        .unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        let fresh = BuildPlan::new(spec, &tag, &Default::default()).unwrap();
        assert_eq!(fresh.platform.to_string(), platform);
        assert_eq!(fresh.key_inputs().files, plan.key_inputs().files);
        fresh
    }
}
