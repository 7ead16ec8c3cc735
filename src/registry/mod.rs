//! Registry access: credentials the way docker users already have them, sessions with
//! one registry, and what is asked of it (by [`crate::oci::ImageRef`]: its host, its
//! repository there, its tag or digest).

pub mod auth;
pub mod body;
pub mod client;
pub mod index;
pub mod token;

/// A client for the registry `host`, with its credentials looked up as everywhere else
/// ([`auth::lookup`]: `registry_config` or docker's config, its helpers): the one place
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
