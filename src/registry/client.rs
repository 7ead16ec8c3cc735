//! The OCI distribution client (oci-client): does a tag exist — asked of the registry
//! directly, so deciding that nothing needs building takes no daemon.
//!
//! Plain HTTP is used for `localhost`/`127.0.0.1` registries and those listed in
//! `IMAGESPEC_INSECURE_REGISTRIES` (comma-separated hosts), TLS otherwise.

use crate::registry::auth::Credentials;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// Whether a tag exists (flytekit's `exist()`: yes, no, or cannot tell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existence {
    Yes,
    No,
    Unknown(String),
}

/// `registry/repository:tag` as an oci-client reference, split the way Docker splits it.
/// (Parsing with `Reference::from_str` compiles the full reference grammar's regexes on every
/// run: most of a no-op `build`'s time.)
fn reference(image: &str) -> Reference {
    let host = super::registry_host(image);
    let rest = image.strip_prefix(host).map_or(image, |r| r.trim_start_matches('/'));
    let (repository, tag) = super::split_tag(rest);
    let repository = if host == "docker.io" && !repository.contains('/') { format!("library/{repository}") } else { repository.to_string() };
    Reference::with_tag(host.to_string(), repository, tag.unwrap_or("latest").to_string())
}

/// An error and its causes on one line (reqwest's own message says only "error sending
/// request"; the cause says why, e.g. an untrusted certificate).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// A client for one registry.
pub struct RegistryClient {
    client: Client,
    auth: RegistryAuth,
}

fn insecure(host: &str) -> bool {
    let name = host.split(':').next().unwrap_or(host);
    name == "localhost"
        || name == "127.0.0.1"
        || name == "[::1]"
        || std::env::var("IMAGESPEC_INSECURE_REGISTRIES").is_ok_and(|v| v.split(',').any(|h| h.trim() == host))
}


impl RegistryClient {
    /// A client for `host` with optional credentials.
    pub fn new(host: &str, credentials: Option<&Credentials>) -> RegistryClient {
        let protocol = if insecure(host) { ClientProtocol::HttpsExcept(vec![host.to_string()]) } else { ClientProtocol::Https };
        let client = Client::new(ClientConfig { protocol, ..Default::default() });
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        RegistryClient { client, auth }
    }

    /// HEAD of the manifest: does `image` (`registry/repo:tag`) exist?
    pub async fn exists(&self, image: &str) -> Existence {
        let reference = reference(image);
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        match self.client.fetch_manifest_digest(&reference, &self.auth).await {
            Ok(_) => Existence::Yes,
            Err(E::ImageManifestNotFoundError(_)) => Existence::No,
            Err(E::RegistryError { envelope, .. })
                if envelope.errors.iter().any(|e| matches!(e.code, C::ManifestUnknown | C::NameUnknown)) =>
            {
                Existence::No
            }
            Err(E::AuthenticationFailure(_)) => Existence::Unknown("authentication failed: check the credentials for this registry".into()),
            Err(e) => Existence::Unknown(with_causes(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_without_the_grammar_regexes() {
        for (image, want) in [
            ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
            ("ghcr.io/org/x:1.0", "ghcr.io/org/x:1.0"),
            ("python:3.11", "docker.io/library/python:3.11"),
            ("user/app", "docker.io/user/app:latest"),
        ] {
            let fast = reference(image);
            let parsed: Reference = want.parse().expect("valid");
            assert_eq!((fast.registry(), fast.repository(), fast.tag()), (parsed.registry(), parsed.repository(), parsed.tag()), "{image}");
        }
    }
}
