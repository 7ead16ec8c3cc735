//! A suite's `InRelease` checked as apt checks it (apt-secure(8)): its OpenPGP cleartext
//! signature must verify with a key the base image trusts for that source — the keyrings
//! its `signed-by` names (a file, or a key block written in the `.sources` paragraph), else
//! every keyring apt reads by default (`/etc/apt/trusted.gpg`, `/etc/apt/trusted.gpg.d/`
//! `*.gpg` and `*.asc`). Only then is the text that was signed read as the Release; what an
//! `InRelease` holds outside the signed part is never read.
//!
//! The OpenPGP part is rPGP's (the `pgp` crate: pure Rust, its RSA/EdDSA/ECDSA from
//! RustCrypto, so it builds here with no system library, unlike sequoia's default Nettle
//! backend or gpgme); a signature is accepted from a primary key or any of its subkeys
//! (Debian signs with subkeys). Left: key expiry and revocation are not checked (apt's
//! `sqv`/`gpgv` refuse an expired key).

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};

/// A keyring file of the base's, by its path in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Why an `InRelease` is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("{url}: not an OpenPGP signed message: {source}")]
    NotSigned {
        url: String,
        #[source]
        source: Box<pgp::errors::Error>,
    },
    #[error("{url}: the base image has no keyring to check its signature with{}", named(.looked))]
    NoKeys { url: String, looked: Vec<String> },
    #[error("{url}: its OpenPGP signature does not verify with the base image's keys ({})", .keyrings.join(", "))]
    Bad { url: String, keyrings: Vec<String> },
    #[error("{url}: keyring {path}: {source}")]
    Keyring {
        url: String,
        path: String,
        #[source]
        source: Box<pgp::errors::Error>,
    },
}

fn named(looked: &[String]) -> String {
    if looked.is_empty() {
        String::new()
    } else {
        format!(" (looked for {})", looked.join(", "))
    }
}

/// The public keys of keyring files (binary `.gpg` or armored `.asc`).
fn keys(url: &str, files: &[KeyringFile]) -> Result<Vec<SignedPublicKey>, SignatureError> {
    let mut out = Vec::new();
    for file in files {
        let bad = |source| SignatureError::Keyring {
            url: url.to_string(),
            path: file.path.clone(),
            source: Box::new(source),
        };
        let armored = file.bytes.starts_with(b"-----BEGIN");
        let parsed: Box<dyn Iterator<Item = pgp::errors::Result<SignedPublicKey>>> = if armored {
            SignedPublicKey::from_armor_many(&file.bytes[..])
                .map_err(bad)?
                .0
        } else {
            SignedPublicKey::from_bytes_many(&file.bytes[..]).map_err(bad)?
        };
        for key in parsed {
            out.push(key.map_err(bad)?);
        }
    }
    Ok(out)
}

/// The signed text of `inrelease` (from `url`), when its signature verifies with a key of
/// `keyrings`; else an error naming the file.
pub fn verified_text(
    url: &str,
    inrelease: &str,
    keyrings: &[KeyringFile],
) -> Result<String, SignatureError> {
    let (message, _) = CleartextSignedMessage::from_string(inrelease).map_err(|source| {
        SignatureError::NotSigned {
            url: url.to_string(),
            source: Box::new(source),
        }
    })?;
    let keys = keys(url, keyrings)?;
    if keys.is_empty() {
        return Err(SignatureError::NoKeys {
            url: url.to_string(),
            looked: keyrings.iter().map(|k| k.path.clone()).collect(),
        });
    }
    let verifies = keys.iter().any(|key| {
        message.verify(&key.primary_key).is_ok()
            || key
                .public_subkeys
                .iter()
                .any(|sub| message.verify(&sub.key).is_ok())
    });
    if !verifies {
        return Err(SignatureError::Bad {
            url: url.to_string(),
            keyrings: keyrings.iter().map(|k| k.path.clone()).collect(),
        });
    }
    Ok(message.signed_text().replace("\r\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://deb.debian.org/debian/dists/bookworm-updates/InRelease";

    fn keyring(name: &str) -> KeyringFile {
        KeyringFile {
            path: format!("/usr/share/keyrings/{name}"),
            bytes: std::fs::read(format!("testdata/apt/signed/{name}")).unwrap(),
        }
    }

    fn text(name: &str) -> String {
        std::fs::read_to_string(format!("testdata/apt/signed/{name}")).unwrap()
    }

    #[test]
    fn debians_inrelease_verifies_with_its_keyring_and_its_signed_text_is_read() {
        let keys = [keyring("debian-archive-bookworm-automatic.gpg")];
        let signed = verified_text(URL, &text("InRelease"), &keys).unwrap();
        assert!(signed.starts_with("Origin: Debian\n"), "{signed}");
        assert!(!signed.contains("BEGIN PGP"));
        let release = super::super::release::Release::parse(&signed).unwrap();
        assert!(release.packages_index("main", "amd64").is_some());
    }

    #[test]
    fn a_tampered_inrelease_is_an_error_naming_the_file() {
        let keys = [keyring("debian-archive-bookworm-automatic.gpg")];
        let e = verified_text(URL, &text("InRelease.tampered"), &keys).unwrap_err();
        assert!(matches!(e, SignatureError::Bad { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{URL}: its OpenPGP signature does not verify with the base image's keys \
                 (/usr/share/keyrings/debian-archive-bookworm-automatic.gpg)"
            )
        );
    }

    #[test]
    fn another_releases_key_an_unsigned_file_or_no_keyring_is_an_error() {
        let bullseye = [keyring("debian-archive-bullseye-automatic.gpg")];
        let e = verified_text(URL, &text("InRelease"), &bullseye).unwrap_err();
        assert!(matches!(e, SignatureError::Bad { .. }), "{e}");
        let unsigned = "Origin: Debian\nSHA256:\n";
        let keys = [keyring("debian-archive-bookworm-automatic.gpg")];
        let e = verified_text(URL, unsigned, &keys).unwrap_err();
        assert!(matches!(e, SignatureError::NotSigned { .. }), "{e}");
        let e = verified_text(URL, &text("InRelease"), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{URL}: the base image has no keyring to check its signature with")
        );
    }
}
