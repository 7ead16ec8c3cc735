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
        let reference = match image.parse::<Reference>() {
            Ok(r) => r,
            Err(e) => return Existence::Unknown(format!("not an image reference: {e}")),
        };
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
            Err(e) => Existence::Unknown(e.to_string()),
        }
    }
}
