//! What a layer says about packages, read from its tar as it streams (never the whole layer
//! in memory): only the files the catalogers read are kept (dpkg's status, a distribution's
//! `METADATA`, conda's records), parsed at once, with the layer's whiteouts. The layers are
//! then merged base first, as an overlay file system stacks them: a whiteout (`.wh.NAME`)
//! removes `NAME` and what is under it from the layers below, an opaque directory
//! (`.wh..wh..opq`) everything below it, and a file replaces the one below.
//!
//! A layer's [`LayerFacts`] depend on its bytes only, so they are cached by the layer's
//! digest (`sbom-layers/` in imagespec's cache): a base's or dependency image's layers are
//! read once per machine, and the fast path reads only its source layer. The daemonless
//! builder hands over the facts of the layers it reads (the base's, [`read_beside`] its
//! tree) and writes (from their files, [`add_file`]), in this run and in the cache, so a
//! cold build reads no layer twice; its wheels' hashes (a `uv.lock`'s) are the one thing
//! they hold that a layer's bytes do not say.

use super::{Package, conda, dpkg, python};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Past this size a file the catalogers would read is left out (a status file is a few MB).
pub const FILE_LIMIT: u64 = 64 << 20;

/// The packages a layer's files describe, and what the layer removes from those below.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFacts {
    /// A file's path (no leading `/` or `./`) → the packages it describes (none: the file
    /// is there, and replaces a lower one, but describes nothing).
    pub files: BTreeMap<String, Vec<Package>>,
    /// Paths this layer deletes from the layers below (`dir/.wh.NAME` → `dir/NAME`).
    pub whiteouts: Vec<String>,
    /// Directories whose lower contents this layer hides (`dir/.wh..wh..opq` → `dir`).
    pub opaque: Vec<String>,
}

/// `path` as the merge compares them: no leading `./` or `/`, no trailing `/`.
fn normalize(path: &str) -> &str {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    path.trim_end_matches('/')
}

/// A cataloger: a file's bytes → the packages it describes.
type Cataloger = fn(&[u8]) -> Vec<Package>;

/// Which cataloger reads the file at `path`, if any.
fn cataloger(path: &str) -> Option<Cataloger> {
    fn status(bytes: &[u8]) -> Vec<Package> {
        dpkg::parse_status(&String::from_utf8_lossy(bytes))
    }
    fn metadata(bytes: &[u8]) -> Vec<Package> {
        python::parse_metadata(&String::from_utf8_lossy(bytes))
            .into_iter()
            .collect()
    }
    fn record(bytes: &[u8]) -> Vec<Package> {
        conda::parse_record(bytes).into_iter().collect()
    }
    if path == "var/lib/dpkg/status"
        || path
            .strip_prefix("var/lib/dpkg/status.d/")
            .is_some_and(|name| !name.contains('/') && !name.ends_with(".md5sums"))
    {
        Some(status)
    } else if python::is_metadata(path) {
        Some(metadata)
    } else if conda::is_record(path) {
        Some(record)
    } else {
        None
    }
}

/// The facts of one layer: a tar, gzip'd or not (the first bytes say which).
pub fn read_layer(layer: impl Read) -> std::io::Result<LayerFacts> {
    let mut buffered = BufReader::with_capacity(1 << 16, layer);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        read_tar(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        read_tar(buffered)
    }
}

fn read_tar(tar: impl Read) -> std::io::Result<LayerFacts> {
    let mut facts = LayerFacts::default();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = normalize(&raw);
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None => ("", path),
        };
        if name == ".wh..wh..opq" {
            facts.opaque.push(dir.to_string());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let joined = if dir.is_empty() {
                hidden.to_string()
            } else {
                format!("{dir}/{hidden}")
            };
            facts.whiteouts.push(joined);
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let size = entry.size();
        add_file(&mut facts, path, size, &mut entry)?;
    }
    Ok(facts)
}

/// Whether a cataloger reads the file at `path` (in a layer, no leading `/`).
pub fn cataloged(path: &str) -> bool {
    cataloger(normalize(path)).is_some()
}

/// Adds what the regular file at `path` (`size` bytes, `content`) says to `facts`, as
/// reading it from a layer's tar does: nothing for a file no cataloger reads, no packages
/// for one past [`FILE_LIMIT`]. For a layer made on this machine (its files at hand).
pub fn add_file(
    facts: &mut LayerFacts,
    path: &str,
    size: u64,
    content: impl Read,
) -> std::io::Result<()> {
    let path = normalize(path);
    let Some(parse) = cataloger(path) else {
        return Ok(());
    };
    if size > FILE_LIMIT {
        facts.files.insert(path.to_string(), Vec::new());
        return Ok(());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    content.take(FILE_LIMIT).read_to_end(&mut bytes)?;
    facts.files.insert(path.to_string(), parse(&bytes));
    Ok(())
}

/// Runs `read` on `tar` (an uncompressed layer) while the same bytes are read for their
/// facts on another thread: one decompression for a caller that reads the layer anyway
/// (the daemonless builder's base tree). Every byte `read` takes is handed over; what it
/// leaves unread (the padding after the tar's end) is not needed.
pub fn read_beside<R: Read, T>(
    tar: R,
    read: impl FnOnce(&mut dyn Read) -> T,
) -> (T, std::io::Result<LayerFacts>) {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    std::thread::scope(|scope| {
        let facts = scope.spawn(move || {
            read_tar(Received {
                receiver,
                chunk: Vec::new(),
                at: 0,
            })
        });
        // The sender is dropped with the tee: the other side then sees the end.
        let mut tee = std::io::BufReader::with_capacity(
            1 << 20,
            Tee {
                inner: tar,
                sender: Some(sender),
            },
        );
        let out = read(&mut tee);
        drop(tee);
        let facts = facts
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the facts reader panicked")));
        (out, facts)
    })
}

/// A reader that hands every chunk it reads to a channel too (until the other side
/// hangs up: its error is its own).
struct Tee<R> {
    inner: R,
    sender: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0
            && let Some(sender) = &self.sender
            && sender.send(buf[..n].to_vec()).is_err()
        {
            self.sender = None;
        }
        Ok(n)
    }
}

/// The chunks a [`Tee`] sent, as one stream; its end when the tee is gone.
struct Received {
    receiver: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.receiver.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The packages of the image whose layers (base first) are `layers`, by the path of the
/// file that describes them.
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a LayerFacts>) -> Vec<(String, Package)> {
    let mut seen: BTreeMap<String, Vec<Package>> = BTreeMap::new();
    let remove_under = |seen: &mut BTreeMap<String, Vec<Package>>, dir: &str| {
        if dir.is_empty() {
            seen.clear();
        } else {
            let prefix = format!("{dir}/");
            seen.retain(|path, _| !path.starts_with(&prefix));
        }
    };
    for layer in layers {
        for dir in &layer.opaque {
            remove_under(&mut seen, dir);
        }
        for path in &layer.whiteouts {
            seen.remove(path);
            remove_under(&mut seen, path);
        }
        for (path, packages) in &layer.files {
            seen.insert(path.clone(), packages.clone());
        }
    }
    seen.into_iter()
        .flat_map(|(path, packages)| packages.into_iter().map(move |p| (path.clone(), p)))
        .collect()
}

/// `packages` as [`merge`] gave them, back as the findings of one layer (a file that
/// describes nothing is left out: under the lowest layer it replaces nothing).
pub fn squashed(packages: &[(String, Package)]) -> LayerFacts {
    let mut facts = LayerFacts::default();
    for (path, package) in packages {
        let entry = facts.files.entry(path.clone()).or_default();
        entry.push(package.clone());
    }
    facts
}

/// The first line of a cache entry: its format and version.
const CACHE_HEADER: &str = "imagespec-sbom-layer 1";

/// Where the facts of the layer `hex` (its sha256) are cached, when caching is on.
fn cache_file(hex: &str) -> Option<PathBuf> {
    let home = crate::source::cache_home_if_enabled()?;
    Some(home.join("sbom-layers").join(format!("{hex}.json")))
}

/// Facts handed over in this process, by blob hex: those the daemonless builder made of
/// the layers it read or wrote (with what only it knows, a wheel's hash) reach the SBOM of
/// the image it builds also without a cache dir. A few KB a layer, for this run's layers.
static IN_THIS_RUN: std::sync::Mutex<BTreeMap<String, LayerFacts>> =
    std::sync::Mutex::new(BTreeMap::new());

/// The facts of the layer `hex` handed over in this run, else cached on this machine;
/// `None` when absent or not ours (a miss).
pub fn cached(hex: &str) -> Option<LayerFacts> {
    let handed = IN_THIS_RUN.lock().ok().and_then(|m| m.get(hex).cloned());
    handed.or_else(|| read_cache(&cache_file(hex)?))
}

fn read_cache(file: &Path) -> Option<LayerFacts> {
    let text = std::fs::read_to_string(file).ok()?;
    let (header, body) = text.split_once('\n')?;
    (header == CACHE_HEADER)
        .then(|| serde_json::from_str(body).ok())
        .flatten()
}

/// Keeps `facts` of the layer `hex` for this run and on this machine (best effort: a cache
/// that cannot be written is skipped).
pub fn remember(hex: &str, facts: &LayerFacts) {
    hand_over(hex, facts);
    if let Some(file) = cache_file(hex) {
        write_cache(&file, facts);
    }
}

/// Hands `facts` of the layer `hex` to this run's SBOM only (a layer made for one image,
/// like the fast path's source layer, is not kept on this machine).
pub fn hand_over(hex: &str, facts: &LayerFacts) {
    if let Ok(mut handed) = IN_THIS_RUN.lock() {
        handed.insert(hex.to_string(), facts.clone());
    }
}

/// The facts of the files `kept` as a layer writer kept them ([`cataloged`]'s), all read
/// from memory.
pub fn facts_of_kept(kept: &[crate::source::layer::KeptFile]) -> LayerFacts {
    let mut facts = LayerFacts::default();
    for file in kept {
        // In memory: reading it cannot fail.
        let _ = add_file(&mut facts, &file.path, file.size, &file.bytes[..]);
    }
    facts
}

fn write_cache(file: &Path, facts: &LayerFacts) {
    let body = serde_json::to_string(facts).expect("facts serialise");
    crate::scratch::keep_in_cache(file, format!("{CACHE_HEADER}\n{body}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(path, contents)` files; `None` contents: a directory.
    pub(crate) fn tar(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, contents) in entries {
            let mut header = tar::Header::new_gnu();
            match contents {
                Some(text) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(text.len() as u64);
                    header.set_mode(0o644);
                    builder
                        .append_data(&mut header, path, text.as_bytes())
                        .unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder
                        .append_data(&mut header, path, std::io::empty())
                        .unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    const SITE: &str = "opt/venv/lib/python3.12/site-packages";

    fn names(found: &[(String, Package)]) -> Vec<String> {
        found
            .iter()
            .map(|(_, p)| format!("{}={}", p.name, p.version))
            .collect()
    }

    #[test]
    fn a_layer_keeps_the_files_the_catalogers_read_and_its_whiteouts() {
        let metadata = format!("{SITE}/six-1.16.0.dist-info/METADATA");
        let layer = tar(&[
            ("./var/lib/dpkg/", None),
            (
                "./var/lib/dpkg/status",
                Some("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n"),
            ),
            (&metadata, Some("Name: six\nVersion: 1.16.0\n")),
            ("usr/bin/python3", Some("binary")),
            ("etc/.wh.motd", Some("")),
            ("opt/conda/.wh..wh..opq", Some("")),
        ]);
        let facts = read_layer(&gzip(&layer)[..]).unwrap();
        assert_eq!(facts, read_layer(&layer[..]).unwrap(), "gzip'd or not");
        assert_eq!(
            facts.files.keys().collect::<Vec<_>>(),
            [
                "opt/venv/lib/python3.12/site-packages/six-1.16.0.dist-info/METADATA",
                "var/lib/dpkg/status"
            ]
        );
        assert_eq!(facts.whiteouts, ["etc/motd"]);
        assert_eq!(facts.opaque, ["opt/conda"]);
    }

    #[test]
    fn whiteouts_and_opaque_directories_remove_what_is_below() {
        let meta = |name: &str| format!("{SITE}/{name}-1.dist-info/METADATA");
        let content = |name: &str| format!("Name: {name}\nVersion: 1\n");
        let (a, b, c) = (meta("a"), meta("b"), meta("c"));
        let base = tar(&[
            (&a, Some(&content("a"))),
            (&b, Some(&content("b"))),
            (
                "opt/conda/conda-meta/x-1-0.json",
                Some(r#"{"name":"x","version":"1"}"#),
            ),
        ]);
        let wh_a = format!("{SITE}/.wh.a-1.dist-info");
        let upper = tar(&[
            (&wh_a, Some("")),
            ("opt/conda/.wh..wh..opq", Some("")),
            (&c, Some(&content("c"))),
        ]);
        let layers = [
            read_layer(&base[..]).unwrap(),
            read_layer(&upper[..]).unwrap(),
        ];
        assert_eq!(names(&merge(&layers)), ["b=1", "c=1"]);
        // The same layers the other way round: the whiteout has nothing below it.
        let reversed = [layers[1].clone(), layers[0].clone()];
        assert_eq!(names(&merge(&reversed)), ["x=1", "a=1", "b=1", "c=1"]);
    }

    /// A dependency image's layers squashed into one (what this run hands over of an image
    /// it made) give, under any upper layer, what the layers themselves give.
    #[test]
    fn squashed_layers_merge_as_the_layers_do() {
        let meta = |name: &str| format!("{SITE}/{name}-1.dist-info/METADATA");
        let content = |name: &str| format!("Name: {name}\nVersion: 1\n");
        let (a, b, c) = (meta("a"), meta("b"), meta("c"));
        let status = "Package: p\nStatus: install ok installed\nVersion: 1\n";
        let base = tar(&[
            (&a, Some(&content("a"))),
            ("var/lib/dpkg/status", Some(status)),
        ]);
        let venv = tar(&[(&b, Some(&content("b"))), ("usr/bin/tool", Some("x"))]);
        let wh_a = format!("{SITE}/.wh.a-1.dist-info");
        let source = tar(&[(&wh_a, Some("")), (&c, Some(&content("c")))]);
        let [base, venv, source] = [base, venv, source].map(|t| read_layer(&t[..]).unwrap());
        let whole = merge([&base, &venv, &source]);
        let squashed = squashed(&merge([&base, &venv]));
        assert_eq!(merge([&squashed, &source]), whole);
        assert_eq!(names(&whole), ["b=1", "c=1", "p=1"]);
    }

    #[test]
    fn an_upper_status_file_replaces_the_lower_one() {
        let status = |v: &str| format!("Package: p\nStatus: install ok installed\nVersion: {v}\n");
        let (one, two) = (status("1"), status("2"));
        let lower = read_layer(&tar(&[("var/lib/dpkg/status", Some(&one))])[..]).unwrap();
        let upper = read_layer(&tar(&[("var/lib/dpkg/status", Some(&two))])[..]).unwrap();
        assert_eq!(names(&merge([&lower, &upper])), ["p=2"]);
    }

    #[test]
    fn status_d_files_count_and_their_md5sums_do_not() {
        let layer = tar(&[
            (
                "var/lib/dpkg/status.d/base",
                Some("Package: base-files\nVersion: 12\n"),
            ),
            (
                "var/lib/dpkg/status.d/base.md5sums",
                Some("Package: no\nVersion: 0\n"),
            ),
        ]);
        let facts = read_layer(&layer[..]).unwrap();
        assert_eq!(names(&merge([&facts])), ["base-files=12"]);
    }

    #[test]
    fn the_cache_gives_back_what_was_kept_and_misses_on_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sbom-layers/ab.json");
        let facts = LayerFacts {
            whiteouts: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(read_cache(&file), None);
        write_cache(&file, &facts);
        assert_eq!(read_cache(&file), Some(facts));
        std::fs::write(&file, "imagespec-sbom-layer 0\n{}").unwrap();
        assert_eq!(read_cache(&file), None, "another version's entry is a miss");
        std::fs::write(&file, "").unwrap();
        assert_eq!(read_cache(&file), None);
    }

    /// A layer with a status file, a METADATA, a whiteout and a file no cataloger reads.
    fn sample_layer() -> Vec<u8> {
        let metadata = format!("{SITE}/six-1.16.0.dist-info/METADATA");
        tar(&[
            (
                "var/lib/dpkg/status",
                Some("Package: a\nStatus: install ok installed\nVersion: 1\n"),
            ),
            (&metadata, Some("Name: six\nVersion: 1.16.0\n")),
            ("usr/bin/big", Some(&"x".repeat(3 << 20))),
            ("etc/.wh.motd", Some("")),
        ])
    }

    #[test]
    fn read_beside_gives_the_facts_of_the_bytes_the_other_reader_took() {
        let layer = sample_layer();
        let (taken, facts) = read_beside(&layer[..], |tar| {
            let mut all = Vec::new();
            tar.read_to_end(&mut all).map(|_| all)
        });
        assert_eq!(taken.unwrap(), layer, "the reader sees the layer as it is");
        assert_eq!(facts.unwrap(), read_layer(&layer[..]).unwrap());
        // A tar reader stops at the tar's end: what it took is enough.
        let (entries, facts) = read_beside(&layer[..], |tar| {
            let mut archive = tar::Archive::new(tar);
            archive.entries().unwrap().count()
        });
        assert_eq!(entries, 4);
        assert_eq!(facts.unwrap(), read_layer(&layer[..]).unwrap());
    }

    #[test]
    fn read_beside_survives_a_reader_that_stops_early_and_a_broken_tar() {
        let layer = sample_layer();
        let (_, facts) = read_beside(&layer[..], |tar| tar.read(&mut [0; 512]).unwrap());
        assert!(
            facts.map_or(true, |f| f.files.is_empty()),
            "only a header seen"
        );
        let (n, facts) = read_beside(&[7u8; 4096][..], |tar| {
            std::io::copy(tar, &mut std::io::sink()).unwrap()
        });
        assert_eq!(n, 4096, "the other side's error does not stop this one");
        assert!(facts.is_err());
    }

    #[test]
    fn add_file_is_what_reading_the_tar_gives() {
        let mut facts = LayerFacts::default();
        let status = "Package: a\nStatus: install ok installed\nVersion: 1\n";
        add_file(&mut facts, "./var/lib/dpkg/status", 48, status.as_bytes()).unwrap();
        let metadata = format!("{SITE}/six-1.16.0.dist-info/METADATA");
        let text = "Name: six\nVersion: 1.16.0\n";
        add_file(&mut facts, &metadata, text.len() as u64, text.as_bytes()).unwrap();
        add_file(&mut facts, "usr/bin/big", 3, &b"xyz"[..]).unwrap();
        let mut expected = read_layer(&sample_layer()[..]).unwrap();
        expected.whiteouts.clear();
        assert_eq!(facts, expected);
        assert!(cataloged(&metadata) && !cataloged("usr/bin/big"));
    }

    #[test]
    fn a_broken_tar_is_an_error_not_a_panic() {
        assert!(read_layer(&[0x1f, 0x8b, 0, 1, 2][..]).is_err());
    }
}
