//! The mirror's files over HTTP: a suite's `InRelease` (bounded), its `Packages` indexes
//! and the `.deb`s, each checked against the SHA256 and size the level above lists
//! (InRelease → Packages → .deb) and kept on this machine by that hash
//! (`<cache>/apt/sha256/<hex>`), so an unchanged index or package is never downloaded
//! twice. A body longer than announced is cut off and an error, never read to the end.

use super::deb822;
use super::release::{Listed, Release};
use super::resolve::{Available, Universe};
use super::signature::{KeyringFile, SignatureError};
use super::sources::Source;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The largest `InRelease` read (Debian's is 150 kB).
const MAX_RELEASE: u64 = 8 << 20;

/// Tries of one download ([`Fetcher::get`]), and the pause before the next (times the
/// tries so far).
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Where a download goes, emptied before each try.
trait Restart: std::io::Write + Send {
    fn restart(&mut self) -> std::io::Result<()>;
}

impl Restart for Vec<u8> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl Restart for std::fs::File {
    fn restart(&mut self) -> std::io::Result<()> {
        use std::io::Seek as _;
        self.set_len(0)?;
        self.rewind()
    }
}

/// A mirror file that could not be had or was not the one listed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: more than {max} bytes")]
    TooLong { url: String, max: u64 },
    #[error("GET {url}: SHA256 {found}, expected {expected} (from {from})")]
    Hash {
        url: String,
        expected: String,
        found: String,
        from: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad or missing signature: an error, never a fallback.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("{url}: {source}")]
    Release {
        url: String,
        #[source]
        source: super::release::ReleaseError,
    },
    #[error("{url}: {source}")]
    Index {
        url: String,
        #[source]
        source: deb822::Deb822Error,
    },
    #[error("{url} lists no {component}/binary-{arch}/Packages index")]
    NoIndex {
        url: String,
        component: String,
        arch: String,
    },
    #[error("apt package {package}: its index entry has no {field}")]
    Entry {
        package: String,
        field: &'static str,
    },
}

/// The fields of a `Packages` index entry that resolving ([`super::resolve`]) and
/// fetching ([`Fetcher::deb`]) read. The rest — descriptions, tags, other checksums, most
/// of an index's text — is dropped before parsing ([`deb822::keep_fields`]).
impl FetchError {
    /// Whether trying the download again may succeed: the connection or the body failed, or
    /// the server answered 5xx.
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Http { .. } => true,
            FetchError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

pub const INDEX_FIELDS: &[&str] = &[
    "Package",
    "Version",
    "Architecture",
    "Provides",
    "Pre-Depends",
    "Depends",
    "Conflicts",
    "Breaks",
    "Filename",
    "SHA256",
    "Size",
];

/// Downloads into a directory of files named by their SHA256.
pub struct Fetcher {
    http: reqwest::Client,
    dir: PathBuf,
    /// Each `Packages` index's [`INDEX_FIELDS`], by the index's SHA256 (no cache: none).
    fields: Option<PathBuf>,
    /// Holds the directory when there is no cache (removed on drop).
    _temp: Option<tempfile::TempDir>,
}

impl Fetcher {
    /// Files kept in `cache/apt/sha256` (`None`: a temporary directory).
    pub fn new(cache: Option<&Path>) -> Result<Fetcher, FetchError> {
        let fields = cache.map(|c| c.join("apt").join("fields"));
        let (dir, temp) = match cache {
            Some(c) => (c.join("apt").join("sha256"), None),
            None => {
                let t = tempfile::tempdir().map_err(|source| FetchError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&dir).map_err(|source| FetchError::Io {
            path: dir.clone(),
            source,
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|source| FetchError::Http {
                url: String::new(),
                source,
            })?;
        Ok(Fetcher {
            http,
            dir,
            fields,
            _temp: temp,
        })
    }

    /// The body of `url`, at most `max` bytes, written to `out`; its SHA256. A download
    /// that fails on the way (no answer, a reset, a time-out, a 5xx) is tried again, from
    /// the start, [`ATTEMPTS`] times in all with a pause between, as apt's
    /// `Acquire::Retries` does; a refusal (4xx), a body too long or a wrong hash is final.
    async fn get(&self, url: &str, max: u64, out: &mut dyn Restart) -> Result<String, FetchError> {
        let mut attempt = 1;
        loop {
            out.restart().map_err(|source| FetchError::Io {
                path: self.dir.clone(),
                source,
            })?;
            match self.get_once(url, max, out).await {
                Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    async fn get_once(
        &self,
        url: &str,
        max: u64,
        out: &mut dyn std::io::Write,
    ) -> Result<String, FetchError> {
        let http = |source| FetchError::Http {
            url: url.to_string(),
            source,
        };
        let mut response = self.http.get(url).send().await.map_err(http)?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        let (mut hash, mut read) = (Sha256::new(), 0u64);
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            read += chunk.len() as u64;
            if read > max {
                return Err(FetchError::TooLong {
                    url: url.to_string(),
                    max,
                });
            }
            hash.update(&chunk);
            out.write_all(&chunk).map_err(|source| FetchError::Io {
                path: self.dir.clone(),
                source,
            })?;
        }
        Ok(hex(hash))
    }

    /// A file whose SHA256 and size `listed` gives: the kept copy, or downloaded and
    /// checked (`from` names the list in errors).
    pub async fn verified(
        &self,
        url: &str,
        listed: &Listed,
        from: &'static str,
    ) -> Result<PathBuf, FetchError> {
        let expected = file_name(listed).ok_or_else(|| FetchError::Hash {
            url: url.to_string(),
            expected: listed.sha256.clone(),
            found: String::new(),
            from,
        })?;
        let path = self.dir.join(&expected);
        if path.is_file() {
            return Ok(path);
        }
        let io = |source| FetchError::Io {
            path: path.clone(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        let found = self.get(url, listed.size, tmp.as_file_mut()).await?;
        if found != expected {
            return Err(FetchError::Hash {
                url: url.to_string(),
                expected,
                found,
                from,
            });
        }
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(path)
    }

    /// A suite's `InRelease`, its signature verified with `keyrings` (the base's keys for
    /// `source`), and the text signed parsed: once per build for a suite and keys, however
    /// many platforms ask (a suite's `InRelease` lists every architecture's indexes, and
    /// every platform then reads the same one; [`RELEASE_SHARED_FOR`]).
    pub async fn release(
        &self,
        source: &Source,
        keyrings: &[KeyringFile],
    ) -> Result<Release, FetchError> {
        let url = format!("{}/dists/{}/InRelease", source.uri, source.suite);
        let cell = released(&url, keyrings);
        let release = cell.get_or_try_init(|| self.release_now(url, keyrings));
        Ok(release.await?.clone())
    }

    /// [`Fetcher::release`] of `url`, fetched and verified now.
    async fn release_now(
        &self,
        url: String,
        keyrings: &[KeyringFile],
    ) -> Result<Release, FetchError> {
        let mut body = Vec::new();
        self.get(&url, MAX_RELEASE, &mut body).await?;
        let signed =
            super::signature::verified_text(&url, &String::from_utf8_lossy(&body), keyrings)?;
        Release::parse(&signed).map_err(|source| FetchError::Release { url, source })
    }

    /// Every package `sources` offer for `arch`, each `InRelease` verified with the
    /// source's keyrings and each index checked against it.
    pub async fn universe(
        &self,
        sources: &[(Source, Vec<KeyringFile>)],
        arch: &str,
    ) -> Result<Universe, FetchError> {
        let mut available = Vec::new();
        let served: Vec<_> = sources.iter().filter(|(s, _)| s.serves(arch)).collect();
        // Every suite's `InRelease` at once: a round trip each, and nothing else waits.
        let releases = served
            .iter()
            .map(|(source, keys)| self.release(source, keys));
        let releases = futures_util::future::try_join_all(releases).await?;
        for ((source, _), release) in served.into_iter().zip(releases) {
            let dists = format!("{}/dists/{}", source.uri, source.suite);
            for component in &source.components {
                let Some((path, listed)) = release.packages_index(component, arch) else {
                    return Err(FetchError::NoIndex {
                        url: format!("{dists}/InRelease"),
                        component: component.clone(),
                        arch: arch.to_string(),
                    });
                };
                let url = format!("{dists}/{path}");
                let text = self.index_fields(&url, path, listed).await?;
                let paragraphs = deb822::parse(&text).map_err(|source| FetchError::Index {
                    url: url.clone(),
                    source,
                })?;
                available.extend(paragraphs.into_iter().map(|paragraph| Available {
                    paragraph,
                    mirror: source.uri.clone(),
                }));
            }
        }
        Ok(Universe::new(arch, available))
    }

    /// The [`INDEX_FIELDS`] of the `Packages` index `listed` (at `url`, `path` in its
    /// suite): kept on this machine by the index's SHA256 (`<cache>/apt/fields/`), written
    /// once from the verified index, so a later build neither decompresses the index nor
    /// reads its descriptions again (a cache that cannot be written only costs that).
    async fn index_fields(
        &self,
        url: &str,
        path: &str,
        listed: &Listed,
    ) -> Result<String, FetchError> {
        let kept = self
            .fields
            .as_ref()
            .zip(file_name(listed))
            .map(|(dir, name)| dir.join(name));
        if let Some(text) = kept.as_ref().and_then(|k| std::fs::read_to_string(k).ok()) {
            return Ok(text);
        }
        let file = self.verified(url, listed, "InRelease").await?;
        let text = deb822::keep_fields(&read_index(&file, path)?, INDEX_FIELDS);
        if let Some(kept) = kept {
            crate::scratch::keep_in_cache(&kept, text.as_bytes());
        }
        Ok(text)
    }

    /// A chosen package's `.deb`, checked against its index entry.
    pub async fn deb(&self, package: &Available) -> Result<PathBuf, FetchError> {
        let field = |field: &'static str| {
            package.paragraph.get(field).ok_or(FetchError::Entry {
                package: package.name().to_string(),
                field,
            })
        };
        let listed = Listed {
            sha256: field("SHA256")?.to_string(),
            size: field("Size")?.parse().map_err(|_| FetchError::Entry {
                package: package.name().to_string(),
                field: "Size",
            })?,
        };
        let url = format!("{}/{}", package.mirror, field("Filename")?);
        self.verified(&url, &listed, "the Packages index").await
    }
}

/// How long an `InRelease` fetched for one platform serves the others: the platforms of a
/// build ask within seconds of each other, and a process that builds again later (a library
/// user) reads the suite anew.
const RELEASE_SHARED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// A suite's `InRelease` shared by the platforms of a build; empty until one fetch of it
/// succeeded.
type SharedRelease = Arc<tokio::sync::OnceCell<Release>>;

/// The cell of this build's `InRelease` at `url` verified with `keyrings` (the key: the URL
/// and a SHA256 over the keyrings' bytes), made anew once it is older than
/// [`RELEASE_SHARED_FOR`].
fn released(url: &str, keyrings: &[KeyringFile]) -> SharedRelease {
    static RELEASES: Mutex<BTreeMap<String, (Instant, SharedRelease)>> =
        Mutex::new(BTreeMap::new());
    let mut keys = Sha256::new();
    for keyring in keyrings {
        keys.update(Sha256::digest(&keyring.bytes));
    }
    let key = format!("{url} {}", hex(keys));
    let now = Instant::now();
    let mut releases = RELEASES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    releases.retain(|_, (made, _)| now.duration_since(*made) < RELEASE_SHARED_FOR);
    let (_, cell) = releases
        .entry(key)
        .or_insert_with(|| (now, SharedRelease::default()));
    cell.clone()
}

/// The name a listed file is kept under: its SHA256 in lower-case hex (`None`: not one).
fn file_name(listed: &Listed) -> Option<String> {
    let hex = listed.sha256.to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// A kept index file's text, decompressed as its name says.
fn read_index(file: &Path, name: &str) -> Result<String, FetchError> {
    use std::io::Read;
    let io = |source| FetchError::Io {
        path: file.to_path_buf(),
        source,
    };
    let raw = std::io::BufReader::new(std::fs::File::open(file).map_err(io)?);
    let mut reader: Box<dyn Read> = if name.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new(raw))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut text = String::new();
    reader.read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

fn hex(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on loopback answering each connection in turn with `answers` (a status
    /// line and a body); the connections it got.
    fn server(
        answers: Vec<(&'static str, &'static str)>,
    ) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
            let mut served = 0;
            for (status, body) in answers {
                let Ok((mut conn, _)) = listener.accept() else {
                    break;
                };
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request);
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes());
                served += 1;
            }
            served
        });
        (url, served)
    }

    #[tokio::test]
    async fn a_download_failing_on_the_way_is_tried_again_and_a_refusal_is_not() {
        let fetcher = Fetcher::new(None).unwrap();
        let (url, served) = server(vec![
            ("503 Service Unavailable", "busy"),
            ("500 Internal Server Error", "oops"),
            ("200 OK", "hello"),
        ]);
        let mut body = Vec::new();
        let sha = fetcher.get(&url, 100, &mut body).await.unwrap();
        assert_eq!(body, b"hello", "only the last try's body");
        assert_eq!(sha, hex(Sha256::new_with_prefix(b"hello")));
        assert_eq!(served.join().unwrap(), 3);

        // One answer only: a second try would find no server and end in another error.
        let (url, served) = server(vec![("404 Not Found", "no")]);
        let err = fetcher.get(&url, 100, &mut body).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Status { status: 404, .. }),
            "{err}"
        );
        assert_eq!(served.join().unwrap(), 1);

        let (url, served) = server(vec![("503 Service Unavailable", ""); 3]);
        let err = fetcher.get(&url, 100, &mut body).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Status { status: 503, .. }),
            "{err}"
        );
        assert_eq!(served.join().unwrap(), ATTEMPTS as usize);
    }

    /// One `InRelease` per suite and keys in a run: the platforms that ask for the same
    /// one share its cell; other keys (another base's) or another suite get their own.
    #[test]
    fn a_suites_release_is_shared_by_the_platforms_with_the_same_keys() {
        let keys = |bytes: &[u8]| {
            vec![KeyringFile {
                path: "/usr/share/keyrings/debian-archive-keyring.gpg".into(),
                bytes: bytes.to_vec(),
            }]
        };
        let url = "http://mirror.test/debian/dists/bookworm/InRelease";
        let first = released(url, &keys(b"debian"));
        assert!(Arc::ptr_eq(&first, &released(url, &keys(b"debian"))));
        assert!(!Arc::ptr_eq(&first, &released(url, &keys(b"other"))));
        let updates = "http://mirror.test/debian/dists/bookworm-updates/InRelease";
        assert!(!Arc::ptr_eq(&first, &released(updates, &keys(b"debian"))));
    }

    #[test]
    fn a_kept_index_is_read_through_its_compression() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Package: a\nVersion: 1\n";
        let xz_path = dir.path().join("x");
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut xz, text.as_bytes()).unwrap();
        std::fs::write(&xz_path, xz.finish().unwrap()).unwrap();
        assert_eq!(
            read_index(&xz_path, "main/binary-amd64/Packages.xz").unwrap(),
            text
        );
        std::fs::write(&xz_path, text).unwrap();
        assert_eq!(read_index(&xz_path, "Packages").unwrap(), text);
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn an_indexs_fields_are_kept_by_its_hash_and_read_back_without_the_index() {
        let cache = tempfile::tempdir().unwrap();
        let fetcher = Fetcher::new(Some(cache.path())).unwrap();
        let index = "Package: jq\nVersion: 1.6\nDescription: json\n more\nSHA256: ab\n\n";
        let sha = hex({
            let mut h = Sha256::new();
            h.update(index);
            h
        });
        let listed = Listed {
            sha256: sha.to_ascii_uppercase(),
            size: index.len() as u64,
        };
        // The index was downloaded and verified before; nothing listens at the URL.
        std::fs::write(cache.path().join("apt/sha256").join(&sha), index).unwrap();
        let url = "http://127.0.0.1:9/Packages";
        let fields = block_on(fetcher.index_fields(url, "main/binary-amd64/Packages", &listed));
        assert_eq!(fields.unwrap(), "Package: jq\nVersion: 1.6\nSHA256: ab\n\n");
        let kept = cache.path().join("apt/fields").join(&sha);
        assert_eq!(
            std::fs::read_to_string(&kept).unwrap(),
            "Package: jq\nVersion: 1.6\nSHA256: ab\n\n"
        );
        // A later build reads the kept fields: the index itself is not needed.
        std::fs::remove_file(cache.path().join("apt/sha256").join(&sha)).unwrap();
        std::fs::write(&kept, "Package: kept\n").unwrap();
        let again = block_on(fetcher.index_fields(url, "main/binary-amd64/Packages", &listed));
        assert_eq!(again.unwrap(), "Package: kept\n");
    }

    #[test]
    fn a_hash_that_is_not_one_is_refused_before_any_request() {
        let fetcher = Fetcher::new(None).unwrap();
        let listed = Listed {
            sha256: "../../etc/passwd".into(),
            size: 1,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(fetcher.verified("http://127.0.0.1:9/x", &listed, "test"))
            .unwrap_err();
        assert!(matches!(e, FetchError::Hash { .. }), "{e}");
    }
}
