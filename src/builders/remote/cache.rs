//! The registry cache of remote builds: BuildKit's `type=registry` cache (buildx's
//! `--cache-to`/`--cache-from`), so that a builder with no state of its own (an ephemeral CI
//! runner, a freshly started buildkitd) reuses every step another build exported. On by
//! default for a remote builder, at `<repository>:buildcache` (the image's repository, tag
//! `buildcache`), exported with `mode=max` (every stage's steps, not only the final image's)
//! and `ignore-error=true`: a cache the credentials cannot write leaves a warning in the
//! build's progress, the build goes on. `imagespec prune` keeps that tag unless asked.
//!
//! ```
//! use imagespec::builders::remote::cache::{CacheChoice, default_ref};
//! let image = "r.example/team/app:1a2b".parse().unwrap();
//! assert_eq!(default_ref(&image), "r.example/team/app:buildcache");
//! let (options, said) = CacheChoice::default().options(&image);
//! assert_eq!(options.imports[0].attrs["ref"], "r.example/team/app:buildcache");
//! assert_eq!(options.exports[0].attrs["mode"], "max");
//! ```

use crate::oci::ImageRef;
use bollard_buildkit_proto::moby::buildkit::v1::{CacheOptions, CacheOptionsEntry};
use std::collections::HashMap;

/// The tag of the default cache ref, in the image's own repository.
pub const CACHE_TAG: &str = "buildcache";

/// `<repository>:buildcache` for `image` (`repo:tag` or `repo@digest`).
pub fn default_ref(image: &ImageRef) -> String {
    format!("{}:{CACHE_TAG}", super::repository_of(image))
}

/// One cache ref and its BuildKit attributes (`mode`, ...), as `--cache-to`/`--cache-from`
/// give it: `REF` or `type=registry,ref=REF[,KEY=VALUE...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRef {
    pub reference: String,
    pub attrs: Vec<(String, String)>,
}

/// A `--cache-to`/`--cache-from` value that is not a registry cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache `{given}`: {why}; expected REF or type=registry,ref=REF[,mode=max]")]
pub struct CacheRefError {
    pub given: String,
    pub why: String,
}

impl CacheRef {
    /// Parses `REF` or buildx's `type=registry,ref=REF[,KEY=VALUE...]`.
    pub fn parse(given: &str) -> Result<CacheRef, CacheRefError> {
        let error = |why: &str| CacheRefError {
            given: given.to_string(),
            why: why.to_string(),
        };
        if !given.contains('=') {
            if given.is_empty() || given.contains([',', ' ']) {
                return Err(error("no image reference"));
            }
            return Ok(CacheRef {
                reference: given.to_string(),
                attrs: Vec::new(),
            });
        }
        let mut reference = None;
        let mut attrs = Vec::new();
        for part in given.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| error(&format!("`{part}` is not KEY=VALUE")))?;
            match key {
                "type" if value == "registry" => {}
                "type" => return Err(error(&format!("type `{value}`: only `registry` is used"))),
                "ref" => reference = Some(value.to_string()),
                _ => attrs.push((key.to_string(), value.to_string())),
            }
        }
        let reference = reference.ok_or_else(|| error("no ref="))?;
        Ok(CacheRef { reference, attrs })
    }
}

/// What a remote build imports and exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheChoice {
    /// `--cache-from`: `None` imports the default ref.
    pub from: Option<CacheRef>,
    /// `--cache-to`: `None` exports to the default ref.
    pub to: Option<CacheRef>,
    /// `--no-cache-export` turns the export off (the import stays).
    pub export: bool,
}

impl Default for CacheChoice {
    fn default() -> Self {
        CacheChoice {
            from: None,
            to: None,
            export: true,
        }
    }
}

impl CacheChoice {
    /// BuildKit's cache options for a build of `image`, and the line that says them.
    pub fn options(&self, image: &ImageRef) -> (CacheOptions, String) {
        let default = || CacheRef {
            reference: default_ref(image),
            attrs: Vec::new(),
        };
        let from = self.from.clone().unwrap_or_else(default);
        let entry = |r: &CacheRef, defaults: &[(&str, &str)]| {
            let mut attrs: HashMap<String, String> = defaults
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            attrs.extend(r.attrs.iter().cloned());
            attrs.insert("ref".into(), r.reference.clone());
            CacheOptionsEntry {
                r#type: "registry".into(),
                attrs,
            }
        };
        let mut options = CacheOptions {
            imports: vec![entry(&from, &[])],
            ..Default::default()
        };
        let mut said = format!("registry cache: from {}", from.reference);
        if self.export {
            let to = self.to.clone().unwrap_or_else(default);
            let export = entry(&to, &[("mode", "max"), ("ignore-error", "true")]);
            said.push_str(&format!(
                ", to {} (mode={})",
                to.reference, export.attrs["mode"]
            ));
            options.exports.push(export);
        } else {
            said.push_str(" (not exported: --no-cache-export)");
        }
        (options, said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> ImageRef {
        name.parse().unwrap()
    }

    #[test]
    fn the_default_ref_is_the_repository_tagged_buildcache() {
        assert_eq!(
            default_ref(&image("localhost:5000/app:deps-1")),
            "localhost:5000/app:buildcache"
        );
        assert_eq!(default_ref(&image("app")), "app:buildcache");
        assert_eq!(
            default_ref(&image(
                "r:5000/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            )),
            "r:5000/a/b:buildcache"
        );
    }

    #[test]
    fn cache_refs_parse_plain_or_as_buildx_writes_them() {
        assert_eq!(
            CacheRef::parse("r/app:cache").unwrap(),
            CacheRef {
                reference: "r/app:cache".into(),
                attrs: vec![]
            }
        );
        let full = CacheRef::parse("type=registry,ref=r/app:c,mode=min").unwrap();
        assert_eq!(full.reference, "r/app:c");
        assert_eq!(full.attrs, vec![("mode".to_string(), "min".to_string())]);
        let local = CacheRef::parse("type=local,dest=/tmp/c").unwrap_err();
        assert_eq!(
            local.to_string(),
            "cache `type=local,dest=/tmp/c`: type `local`: only `registry` is used; expected REF or type=registry,ref=REF[,mode=max]"
        );
        assert!(CacheRef::parse("type=registry,mode=max").is_err());
        assert!(CacheRef::parse("").is_err());
    }

    #[test]
    fn the_export_is_max_and_may_be_turned_off() {
        let (on, said) = CacheChoice::default().options(&image("r/app:1"));
        assert_eq!(on.exports.len(), 1);
        assert_eq!(on.exports[0].attrs["ignore-error"], "true");
        assert_eq!(
            said,
            "registry cache: from r/app:buildcache, to r/app:buildcache (mode=max)"
        );
        let choice = CacheChoice {
            from: Some(CacheRef::parse("r/shared:cache").unwrap()),
            to: Some(CacheRef::parse("type=registry,ref=r/mine:cache,mode=min").unwrap()),
            export: true,
        };
        let (set, _) = choice.options(&image("r/app:1"));
        assert_eq!(set.imports[0].attrs["ref"], "r/shared:cache");
        assert_eq!(set.exports[0].attrs["mode"], "min");
        assert_eq!(set.exports[0].attrs["ref"], "r/mine:cache");
        let off = CacheChoice {
            export: false,
            ..CacheChoice::default()
        };
        let (none, said) = off.options(&image("r/app:1"));
        assert!(none.exports.is_empty());
        assert!(said.ends_with("(not exported: --no-cache-export)"));
    }
}
