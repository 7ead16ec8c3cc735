//! Registry access: credentials the way docker users already have them, and image
//! references split into their parts.

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod index;
pub(crate) mod token;

pub use client::{RegistryClient, RegistryError};

/// A client for the registry `host`, with its credentials looked up as everywhere else
/// (`auth::lookup`: `registry_config` or docker's config, its helpers): the one place
/// registry clients are made, so that `exists`, the fast path, `--output` and the push agree.
pub fn session(
    host: &str,
    registry_config: Option<&std::path::Path>,
    timeouts: crate::timeouts::Timeouts,
) -> Result<client::RegistryClient, auth::AuthError> {
    let found = auth::find(host, registry_config)?;
    Ok(
        client::RegistryClient::new(host, found.credentials.as_ref(), timeouts)
            .with_config(found.config),
    )
}

/// The registry host of an image reference (`docker.io` when it names none), as Docker
/// decides it: the first component is a host when it has a `.` or `:`, or is `localhost`.
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// `name:tag` split at the tag's colon (a port's colon in the host is not a tag).
pub fn split_tag(image: &str) -> (&str, Option<&str>) {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_docker() {
        assert_eq!(registry_host("localhost:5000/a/b:t"), "localhost:5000");
        assert_eq!(registry_host("ghcr.io/org/x:1"), "ghcr.io");
        assert_eq!(registry_host("library/x:1"), "docker.io");
        assert_eq!(registry_host("x"), "docker.io");
        assert_eq!(
            split_tag("localhost:5000/a/b:t"),
            ("localhost:5000/a/b", Some("t"))
        );
        assert_eq!(
            split_tag("localhost:5000/a/b"),
            ("localhost:5000/a/b", None)
        );
    }
}
