//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`), parsed once at the edge.
//!
//! Every digest imagespec reads — a manifest's descriptors, a registry's
//! `Docker-Content-Digest`, an OCI layout's `index.json`, a cache record — is text from
//! someone else, and some of them become file names (`blobs/sha256/<hex>`, a temporary file
//! per base layer). A registry that answers `sha256:../../home/u/.ssh/authorized_keys` must
//! not name a file, so a path is only ever built from a [`Digest`], and a `Digest` exists only
//! for an algorithm we verify with lowercase hex of its exact length.
//!
//! The grammar is oci-spec's ([`oci_spec::image::Digest`]); we narrow it to the two
//! algorithms the image spec registers and we can check (`sha384` and unregistered
//! algorithms are refused: nothing here could verify their content).
//!
//! ```
//! use imagespec::oci::Digest;
//! let d: Digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//!     .parse()
//!     .unwrap();
//! assert_eq!(d.hex(), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
//! assert_eq!(Digest::of_bytes(b"hello"), d);
//! assert!("sha256:../../etc/passwd".parse::<Digest>().is_err());
//! ```

use sha2::Digest as _;
use std::fmt;
use std::str::FromStr;

/// A verified-form content digest: `sha256` or `sha512`, lowercase hex of the right length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// `algorithm:hex`, as written.
    text: Box<str>,
    /// Where the hex starts in `text`.
    split: usize,
}

/// The digest algorithms imagespec can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name in a digest (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// Why a string is not a [`Digest`]; the text is kept (bounded and escaped) for the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{found} is not a valid content digest (`sha256:` and 64 lowercase hex digits, or `sha512:` and 128): {why}"
)]
pub struct DigestError {
    /// The rejected text, quoted and escaped, at most 256 characters of it.
    pub found: String,
    pub why: String,
}

impl Digest {
    /// Parses `text`; the error says what was wrong.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let refuse = |why: String| DigestError {
            found: quoted(text),
            why,
        };
        let Ok(parsed) = oci_spec::image::Digest::from_str(text) else {
            return Err(refuse(why_not(text)));
        };
        match parsed.algorithm() {
            oci_spec::image::DigestAlgorithm::Sha256 | oci_spec::image::DigestAlgorithm::Sha512 => {
            }
            _ => return Err(refuse(why_not(text))),
        }
        let split = text.len() - parsed.digest().len();
        Ok(Digest {
            text: text.into(),
            split,
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::sha256_hex(&hex(&sha2::Sha256::digest(bytes)))
    }

    /// `sha256:<hex>` from the 32 bytes of a finished SHA-256.
    pub fn from_sha256(raw: &[u8]) -> Digest {
        Digest::sha256_hex(&hex(raw))
    }

    fn sha256_hex(hex: &str) -> Digest {
        debug_assert_eq!(hex.len(), 64);
        Digest {
            text: format!("sha256:{hex}").into(),
            split: "sha256:".len(),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        if self.text.starts_with("sha512:") {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        }
    }

    /// The hex part: safe as one file name (`[0-9a-f]+`, never empty).
    pub fn hex(&self) -> &str {
        &self.text[self.split..]
    }

    /// `sha256:…` as a string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A file name for the digest, `sha256-<hex>`: one path component, nothing else.
    pub fn file_name(&self) -> String {
        format!("{}-{}", self.algorithm().as_str(), self.hex())
    }

    /// A hasher that computes a digest of the same algorithm, to check content against it.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.algorithm())
    }
}

/// Incremental hashing with a [`Digest`]'s algorithm.
pub enum Verifier {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Verifier {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Verifier {
        match algorithm {
            Algorithm::Sha256 => Verifier::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Verifier::Sha512(sha2::Sha512::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Verifier::Sha256(h) => h.update(bytes),
            Verifier::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let (name, hex) = match self {
            Verifier::Sha256(h) => ("sha256", hex(&h.finalize())),
            Verifier::Sha512(h) => ("sha512", hex(&h.finalize())),
        };
        Digest {
            text: format!("{name}:{hex}").into(),
            split: name.len() + 1,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// What is wrong with `text` as a digest, in words that do not repeat it (the text is
/// shown once, bounded, by [`quoted`]).
fn why_not(text: &str) -> String {
    let Some((algorithm, hex)) = text.split_once(':') else {
        return "no `algorithm:` before the hex digits".into();
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        other => {
            return format!(
                "the algorithm {} is not sha256 or sha512",
                escaped(other, 40)
            );
        }
    };
    if !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        "it holds characters other than lowercase hex digits".into()
    } else {
        format!("{} hex digits where {algorithm} has {length}", hex.len())
    }
}

/// `text` quoted with Rust's escapes, at most 256 characters of that (a digest in an error
/// comes from someone else: it must not carry a newline or a megabyte into the message).
fn quoted(text: &str) -> String {
    format!("\"{}\"", escaped(text, 256))
}

/// `text` with Rust's escapes (`\n`, `\u{7f}`), cut to `max` characters of the escaped form
/// (escaping may make it six times longer: the cut comes after), `…` marking a cut.
pub(crate) fn escaped(text: &str, max: usize) -> String {
    let mut out: String = text.escape_debug().take(max).collect();
    if text.escape_debug().nth(max).is_some() {
        out.push('…');
    }
    out
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        &*self.text == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        &*self.text == *other
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn sha256_and_sha512_of_the_right_length_are_digests() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), HEX);
        assert_eq!(d.file_name(), format!("sha256-{HEX}"));
        let long = "ab".repeat(64);
        let d = Digest::parse(&format!("sha512:{long}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.hex(), long);
    }

    #[test]
    fn what_a_hostile_registry_sends_is_refused() {
        for bad in [
            "sha256:../../../home/u/.ssh/authorized_keys",
            "/home/u/.ssh/authorized_keys",
            "../../x",
            "sha256:",
            "sha256",
            "",
            &format!("sha256:{}", &HEX[1..]),
            &format!("sha256:{HEX}0"),
            &format!("sha256:{}", HEX.to_uppercase()),
            &format!("sha256:{HEX}/../a"),
            &format!("sha256:{HEX}\n"),
            &format!("md5:{}", &HEX[..32]),
            &format!("sha384:{}", "a".repeat(96)),
            &format!("sha256+b64:{HEX}"),
            "sha256:xyz",
        ] {
            let e = Digest::parse(bad).expect_err(bad);
            assert!(
                e.to_string().contains("is not a valid content digest"),
                "{e}"
            );
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn errors_are_bounded() {
        let huge = "x".repeat(1 << 20);
        let controls = format!("sha512:{}", "\u{7f}".repeat(5000));
        let algorithm = format!("{}:{HEX}", "\u{7f}".repeat(500));
        for text in [huge.as_str(), &controls, &algorithm] {
            let e = Digest::parse(text).unwrap_err().to_string();
            assert!(e.chars().count() < 600, "{}: {e}", e.chars().count());
            assert!(!e.contains('\n') && !e.contains('\u{7f}'), "{e}");
        }
    }

    #[test]
    fn hashing_gives_the_digest_content_is_checked_against() {
        let d = Digest::of_bytes(b"hello");
        assert_eq!(d.as_str(), format!("sha256:{HEX}"));
        let mut v = d.verifier();
        v.update(b"hel");
        v.update(b"lo");
        assert_eq!(v.finish(), d);
        let mut v = Verifier::new(Algorithm::Sha512);
        v.update(b"hello");
        assert_eq!(v.finish().hex().len(), 128);
    }

    #[test]
    fn serde_refuses_a_bad_digest() {
        let ok: Digest = serde_json::from_str(&format!("\"sha256:{HEX}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            format!("\"sha256:{HEX}\"")
        );
        assert!(serde_json::from_str::<Digest>("\"sha256:../x\"").is_err());
    }
}
