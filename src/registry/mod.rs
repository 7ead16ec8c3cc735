//! Registry access: credentials the way docker users already have them, sessions with
//! one registry, and what is asked of it (by [`crate::oci::ImageRef`]: its host, its
//! repository there, its tag or digest).

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
