//! A `.deb` (deb(5)): an `ar` archive of `debian-binary`, `control.tar[.xz|.gz]` (the
//! control paragraph, `md5sums`, `conffiles`, the maintainer scripts) and
//! `data.tar[.xz|.gz]` (the files, as `dpkg-deb` packs them, parents first). This reads the
//! control files, copies the data into a deterministic layer, and makes the dpkg database
//! entries dpkg writes when it installs the package (`status` paragraph, `info/PKG.list`,
//! `info/PKG.md5sums`, the scripts), so that `dpkg -l`, `dpkg -V` and a later `apt-get`
//! in the image see it installed.
//!
//! Paths are unpacked the way dpkg unpacks them onto an existing tree: a directory the
//! base has as a symlink (`bin` → `usr/bin` on a merged-/usr base) is followed, not
//! replaced (the caller says which, through `dir_link`).

use super::deb822::{self, Paragraph};
use crate::source::layer::{Attrs, LayerWriter};
use std::collections::BTreeMap;
use std::io::Read;

/// A `.deb` that cannot be read or laid down.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("reading the .deb: {0}")]
    Io(#[from] std::io::Error),
    #[error("the .deb has no {0} member")]
    Missing(&'static str),
    #[error("the .deb's {0} is compressed in a way not read here")]
    Compression(String),
    #[error("the .deb's control file: {0}")]
    Control(#[from] deb822::Deb822Error),
    #[error("the .deb's data has {path:?}, which is {why}")]
    Entry { path: String, why: &'static str },
    #[error(transparent)]
    Layer(#[from] crate::source::SourceError),
}

/// The control member's files (`control`, `md5sums`, `conffiles`, `postinst`…).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ControlFiles {
    /// The `control` paragraph.
    pub fn paragraph(&self) -> Result<Paragraph, DebError> {
        let text = String::from_utf8_lossy(self.files.get("control").map_or(&[][..], |c| c));
        deb822::parse(&text)?
            .into_iter()
            .next()
            .ok_or(DebError::Missing("control paragraph"))
    }

    /// A file as text (`""` when absent).
    pub fn text(&self, name: &str) -> String {
        self.files
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }
}

/// The decompressed stream of an `ar` member named `name.tar[.xz|.gz]`.
fn member_reader<'a>(name: &str, member: impl Read + 'a) -> Result<Box<dyn Read + 'a>, DebError> {
    Ok(match name.rsplit_once(".tar") {
        Some((_, "")) => Box::new(member),
        Some((_, ".xz")) => Box::new(xz2::read::XzDecoder::new(member)),
        Some((_, ".gz")) => Box::new(flate2::read::GzDecoder::new(member)),
        _ => return Err(DebError::Compression(name.to_string())),
    })
}

/// Calls `each` with the decompressed member whose name starts with `prefix` (`control.tar`,
/// `data.tar`).
fn with_member<T>(
    deb: impl Read,
    prefix: &'static str,
    each: impl FnOnce(&mut dyn Read) -> Result<T, DebError>,
) -> Result<T, DebError> {
    let mut archive = ar::Archive::new(deb);
    while let Some(entry) = archive.next_entry() {
        let entry = entry?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if name.starts_with(prefix) {
            let mut reader = member_reader(&name, entry)?;
            return each(&mut reader);
        }
    }
    Err(DebError::Missing(prefix))
}

/// The control files of a `.deb`.
pub fn read_control(deb: impl Read) -> Result<ControlFiles, DebError> {
    with_member(deb, "control.tar", |member| {
        let mut files = BTreeMap::new();
        for entry in tar::Archive::new(member).entries()? {
            let mut entry = entry?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = entry.path()?.to_string_lossy().into_owned();
            let name = path.trim_start_matches("./").to_string();
            let mut bytes = Vec::new();
            entry.by_ref().take(16 << 20).read_to_end(&mut bytes)?;
            files.insert(name, bytes);
        }
        Ok(ControlFiles { files })
    })
}

/// A path of the data as dpkg lists it (`/usr/bin/jq`; `/.` for the root).
fn listed(path: &str) -> String {
    let p = path
        .trim_start_matches("./")
        .trim_start_matches('.')
        .trim_matches('/');
    if p.is_empty() {
        "/.".into()
    } else {
        format!("/{p}")
    }
}

/// `path` (relative to `/`) with a leading directory the base has as a symlink replaced by
/// the symlink's target (`bin/ls` → `usr/bin/ls`), as unpacking onto the base resolves it.
pub fn redirect(path: &str, dir_link: &dyn Fn(&str) -> Option<String>) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    for i in 1..parts.len() {
        if let Some(target) = dir_link(&parts[..i].join("/")) {
            let rest = parts.split_off(i);
            return redirect(&format!("{target}/{}", rest.join("/")), dir_link);
        }
    }
    path.to_string()
}

/// What unpacking a `.deb`'s data found: the paths as `info/PKG.list` lists them, and the
/// md5sum of each conffile (`/etc/x` → hex), which `md5sums` leaves out and the `status`
/// paragraph's `Conffiles` holds; and which of the listed paths are directories (two
/// packages may both ship a directory, never the same file).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unpacked {
    pub list: Vec<String>,
    pub conffiles: BTreeMap<String, String>,
    #[serde(default)]
    pub dirs: std::collections::BTreeSet<String>,
}

/// A reader that hashes what passes through it.
struct Md5Reader<R> {
    inner: R,
    hash: md5::Md5,
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        md5::Digest::update(&mut self.hash, &buf[..n]);
        Ok(n)
    }
}

/// Copies the `.deb`'s data into `layer`; the paths as `info/PKG.list` lists them.
/// `dir_link(path)`: the target (relative to `/`) of a directory symlink the base has there.
/// `seen`: the layer's paths so far (several packages share directories: each goes in
/// once; a file two packages ship is an error).
pub fn unpack_data(
    deb: impl Read,
    control: &ControlFiles,
    layer: &mut LayerWriter,
    dir_link: &dyn Fn(&str) -> Option<String>,
    seen: &mut std::collections::BTreeSet<String>,
) -> Result<Unpacked, DebError> {
    let conffiles = control.text("conffiles");
    let conffiles: std::collections::BTreeSet<&str> = conffiles.lines().map(str::trim).collect();
    with_member(deb, "data.tar", |member| {
        let mut out = Unpacked::default();
        for entry in tar::Archive::new(member).entries()? {
            let entry = entry?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            out.list.push(listed(&raw));
            let rel = listed(&raw).trim_start_matches('/').to_string();
            if rel == "." {
                continue;
            }
            if rel.split('/').any(|c| c == "..") {
                return Err(DebError::Entry {
                    path: raw,
                    why: "outside the root",
                });
            }
            let kind = entry.header().entry_type();
            if kind == tar::EntryType::Directory {
                out.dirs.insert(listed(&raw));
            }
            if kind == tar::EntryType::Directory && dir_link(&rel).is_some() {
                continue;
            }
            let path = redirect(&rel, dir_link);
            if !seen.insert(path.clone()) {
                if kind == tar::EntryType::Directory {
                    continue;
                }
                return Err(DebError::Entry {
                    path: raw,
                    why: "shipped by another package too",
                });
            }
            if conffiles.contains(listed(&raw).as_str()) {
                let mut hashing = Md5Reader {
                    inner: entry,
                    hash: md5::Digest::new(),
                };
                let attrs = attrs_of(hashing.inner.header())?;
                let size = hashing.inner.header().size()?;
                layer.file(&path, attrs, size, &mut hashing)?;
                let sum = md5::Digest::finalize(hashing.hash);
                let hex = sum.iter().map(|b| format!("{b:02x}")).collect();
                out.conffiles.insert(listed(&raw), hex);
                continue;
            }
            add_entry(layer, &path, entry, dir_link)?;
        }
        Ok(out)
    })
}

fn attrs_of(h: &tar::Header) -> Result<Attrs, DebError> {
    Ok(Attrs {
        uid: h.uid()?,
        gid: h.gid()?,
        mode: h.mode()? & 0o7777,
    })
}

fn add_entry<R: Read>(
    layer: &mut LayerWriter,
    path: &str,
    mut entry: tar::Entry<'_, R>,
    dir_link: &dyn Fn(&str) -> Option<String>,
) -> Result<(), DebError> {
    let h = entry.header();
    let attrs = attrs_of(h)?;
    let link = || -> Result<String, DebError> {
        Ok(entry
            .link_name()?
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default())
    };
    match h.entry_type() {
        tar::EntryType::Directory => layer.dir(path, attrs)?,
        tar::EntryType::Symlink => layer.symlink(path, attrs, &link()?)?,
        tar::EntryType::Link => {
            let target = listed(&link()?).trim_start_matches('/').to_string();
            layer.hardlink(path, attrs, &redirect(&target, dir_link))?
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = h.size()?;
            layer.file(path, attrs, size, &mut entry)?
        }
        _ => {
            return Err(DebError::Entry {
                path: path.to_string(),
                why: "a device or FIFO",
            });
        }
    }
    Ok(())
}

/// The name dpkg gives a package's `info/` files: `PKG`, or `PKG:ARCH` for a
/// `Multi-Arch: same` package.
pub fn info_name(control: &Paragraph) -> String {
    let name = control.get("Package").unwrap_or_default();
    match (control.get("Multi-Arch"), control.get("Architecture")) {
        (Some("same"), Some(arch)) => format!("{name}:{arch}"),
        _ => name.to_string(),
    }
}

/// The control files dpkg keeps in `/var/lib/dpkg/info/` besides the list.
const KEPT: &[&str] = &[
    "md5sums",
    "conffiles",
    "preinst",
    "postinst",
    "prerm",
    "postrm",
    "config",
    "templates",
    "triggers",
    "shlibs",
    "symbols",
];

/// What dpkg records for an installed package: its `status` paragraph
/// (`Status: install ok installed`, `Conffiles` with their md5sums) and its `info/` files
/// (name → content; scripts keep their executable mode through [`is_script`]).
pub fn database_entries(
    control: &ControlFiles,
    unpacked: &Unpacked,
) -> Result<(Paragraph, BTreeMap<String, Vec<u8>>), DebError> {
    let mut paragraph = control.paragraph()?;
    let mut fields = vec![(
        "Package".to_string(),
        paragraph.get("Package").unwrap_or_default().to_string(),
    )];
    fields.push(("Status".into(), "install ok installed".into()));
    fields.extend(
        paragraph
            .fields
            .drain(..)
            .filter(|(k, _)| !k.eq_ignore_ascii_case("Package")),
    );
    let mut paragraph = Paragraph { fields };
    let conffiles: Vec<String> = control
        .text("conffiles")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|c| {
            let sum = unpacked
                .conffiles
                .get(c)
                .map_or("newconffile", |s| s.as_str());
            format!(" {c} {sum}")
        })
        .collect();
    if !conffiles.is_empty() {
        let at = paragraph
            .fields
            .iter()
            .position(|(k, _)| k == "Description")
            .unwrap_or(paragraph.fields.len());
        paragraph.fields.insert(
            at,
            ("Conffiles".into(), format!("\n{}", conffiles.join("\n"))),
        );
    }
    let name = info_name(&paragraph);
    let mut info = BTreeMap::new();
    let mut text = unpacked.list.join("\n");
    text.push('\n');
    info.insert(format!("{name}.list"), text.into_bytes());
    for kept in KEPT {
        if let Some(bytes) = control.files.get(*kept) {
            info.insert(format!("{name}.{kept}"), bytes.clone());
        }
    }
    Ok((paragraph, info))
}

/// Whether an `info/` file is a maintainer script (mode 0755, else 0644).
pub fn is_script(info_file: &str) -> bool {
    ["preinst", "postinst", "prerm", "postrm", "config"]
        .iter()
        .any(|s| info_file.rsplit_once('.').is_some_and(|(_, ext)| ext == *s))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.deb` made here: `control` (+ `md5sums`, `conffiles`, `postinst`) in
    /// control.tar.xz, the `data` entries ((path, content or None for a dir, or a link)) in
    /// data.tar.xz.
    pub(crate) fn make_deb(control: &[(&str, &str)], data: &[(&str, Option<&str>)]) -> Vec<u8> {
        let tar_xz = |entries: &mut dyn FnMut(&mut tar::Builder<Vec<u8>>)| {
            let mut t = tar::Builder::new(Vec::new());
            entries(&mut t);
            let raw = t.into_inner().unwrap();
            let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
            std::io::Write::write_all(&mut xz, &raw).unwrap();
            xz.finish().unwrap()
        };
        // Owned by root, at time 0.
        let header = |kind: tar::EntryType, mode: u32, size: usize| {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size as u64);
            h
        };
        let file = |t: &mut tar::Builder<Vec<u8>>, path: &str, content: &str, mode: u32| {
            let mut h = header(tar::EntryType::Regular, mode, content.len());
            t.append_data(&mut h, path, content.as_bytes()).unwrap();
        };
        let control_tar = tar_xz(&mut |t| {
            for (name, text) in control {
                file(t, &format!("./{name}"), text, 0o644);
            }
        });
        let data_tar = tar_xz(&mut |t| {
            for (path, content) in data {
                match content {
                    Some(c) if c.starts_with("->") => {
                        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                        t.append_link(&mut h, path, &c[2..]).unwrap();
                    }
                    Some(c) => file(t, path, c, 0o755),
                    None => {
                        let mut h = header(tar::EntryType::Directory, 0o755, 0);
                        t.append_data(&mut h, path, std::io::empty()).unwrap();
                    }
                }
            }
        });
        let mut ar = ar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.xz", control_tar),
            ("data.tar.xz", data_tar),
        ] {
            let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            ar.append(&header, bytes.as_slice()).unwrap();
        }
        ar.into_inner().unwrap()
    }

    fn jq_deb() -> Vec<u8> {
        make_deb(
            &[
                (
                    "control",
                    "Package: libjq1\nVersion: 1.6-2.1\nArchitecture: amd64\nMulti-Arch: same\nDescription: jq library\n more\n",
                ),
                ("md5sums", "0123 usr/lib/libjq.so.1\n4567 etc/jq.conf\n"),
                ("conffiles", "/etc/jq.conf\n"),
                ("triggers", "activate-noawait ldconfig\n"),
            ],
            &[
                ("./", None),
                ("./bin/", None),
                ("./bin/jq", Some("#!")),
                ("./etc/", None),
                ("./etc/jq.conf", Some("x")),
                ("./usr/lib/libjq.so.1", Some("ELF")),
                ("./usr/lib/libjq.so", Some("->libjq.so.1")),
            ],
        )
    }

    #[test]
    fn control_files_and_paragraph() {
        let control = read_control(jq_deb().as_slice()).unwrap();
        assert_eq!(control.paragraph().unwrap().get("Version"), Some("1.6-2.1"));
        assert_eq!(control.text("triggers"), "activate-noawait ldconfig\n");
        assert!(matches!(
            read_control(&b"!<arch>\n"[..]),
            Err(DebError::Missing("control.tar"))
        ));
    }

    #[test]
    fn data_into_a_layer_through_the_bases_directory_links() {
        let control = read_control(jq_deb().as_slice()).unwrap();
        let mut layer = LayerWriter::diff_id_only();
        let dir_link = |p: &str| (p == "bin").then(|| "usr/bin".to_string());
        let unpack = |layer: &mut LayerWriter, seen: &mut std::collections::BTreeSet<String>| {
            unpack_data(jq_deb().as_slice(), &control, layer, &dir_link, seen)
        };
        let mut seen = Default::default();
        let list = unpack(&mut layer, &mut seen).unwrap();
        // md5 of "x".
        assert_eq!(
            list.conffiles["/etc/jq.conf"],
            "9dd4e461268c8034f5c8564e155c67a6"
        );
        assert_eq!(
            list.list,
            [
                "/.",
                "/bin",
                "/bin/jq",
                "/etc",
                "/etc/jq.conf",
                "/usr/lib/libjq.so.1",
                "/usr/lib/libjq.so"
            ]
        );
        assert_eq!(
            list.dirs.iter().collect::<Vec<_>>(),
            ["/bin", "/etc"],
            "the root is no directory of the package's"
        );
        let first = layer.finish_diff_id().unwrap();
        let mut again = LayerWriter::diff_id_only();
        unpack(&mut again, &mut Default::default()).unwrap();
        // A second package with the same directories adds them once; the same file is an error.
        let mut third = LayerWriter::diff_id_only();
        let e = unpack(&mut third, &mut seen).unwrap_err();
        assert!(
            matches!(
                e,
                DebError::Entry {
                    why: "shipped by another package too",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(again.finish_diff_id().unwrap(), first, "deterministic");
        assert_eq!(redirect("bin/jq", &dir_link), "usr/bin/jq");
        assert_eq!(redirect("usr/bin/jq", &dir_link), "usr/bin/jq");
    }

    #[test]
    fn the_dpkg_database_entries() {
        let control = read_control(jq_deb().as_slice()).unwrap();
        let unpacked = Unpacked {
            list: vec!["/.".to_string(), "/usr/lib/libjq.so.1".to_string()],
            conffiles: [("/etc/jq.conf".to_string(), "9dd4".to_string())].into(),
            dirs: Default::default(),
        };
        let (status, info) = database_entries(&control, &unpacked).unwrap();
        assert_eq!(
            status.to_text(),
            "Package: libjq1\nStatus: install ok installed\nVersion: 1.6-2.1\nArchitecture: amd64\nMulti-Arch: same\nConffiles:\n /etc/jq.conf 9dd4\nDescription: jq library\n more\n"
        );
        let names: Vec<_> = info.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "libjq1:amd64.conffiles",
                "libjq1:amd64.list",
                "libjq1:amd64.md5sums",
                "libjq1:amd64.triggers"
            ]
        );
        assert_eq!(info["libjq1:amd64.list"], b"/.\n/usr/lib/libjq.so.1\n");
        assert!(is_script("git.postinst") && !is_script("git.list"));
    }
}
