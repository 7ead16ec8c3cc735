//! The dependency image as layers on the base, pushed to the registry: the user layer (the
//! [`Overlay`] of the user steps), the venv layer (`/root/.venv`, plus the mount points the
//! Dockerfile's install step leaves: `/root/.cache/uv` and `/usr/bin`), the config, the base's
//! layers mounted (same registry) or copied, and the manifest pushed last under the
//! dependency image's tag.

use super::DaemonlessError;
use super::base::{BaseTree, Kind};
use super::user::{Body, Overlay};
use crate::registry::client::RegistryClient;
use crate::source::layer::{Attrs, Layer, LayerWriter};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An entry of a layer to write.
#[derive(Debug, Clone)]
enum Entry {
    Dir,
    Bytes(Vec<u8>),
    File(PathBuf),
    Symlink(String),
}

/// Paths → (owner and mode, what), written sorted with every parent present.
#[derive(Debug, Default)]
pub struct LayerPlan {
    entries: BTreeMap<String, (Attrs, Entry)>,
}

impl LayerPlan {
    /// A directory entry for each parent of the entries that has none, with the base's
    /// attributes (a layer unpacked on its own must not hide them with defaults).
    fn add_parents(&mut self, base: &BaseTree) {
        let paths: Vec<String> = self.entries.keys().cloned().collect();
        for path in paths {
            let mut parent = path.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                parent = p;
                if self.entries.contains_key(parent) {
                    continue;
                }
                let attrs = base.node(parent).filter(|n| n.kind == Kind::Dir).map_or(
                    Attrs {
                        uid: 0,
                        gid: 0,
                        mode: 0o755,
                    },
                    |n| Attrs {
                        uid: n.uid,
                        gid: n.gid,
                        mode: n.mode,
                    },
                );
                self.entries.insert(parent.to_string(), (attrs, Entry::Dir));
            }
        }
    }

    /// Writes the layer into `dir`.
    fn write(&self, dir: &Path) -> Result<Layer, crate::source::SourceError> {
        let mut layer = LayerWriter::new(dir)?;
        for (path, (attrs, entry)) in &self.entries {
            match entry {
                Entry::Dir => layer.dir(path, *attrs)?,
                Entry::Bytes(b) => layer.bytes(path, *attrs, b)?,
                Entry::File(from) => layer.copy(path, *attrs, from)?,
                Entry::Symlink(target) => layer.symlink(path, *attrs, target)?,
            }
        }
        layer.finish()
    }
}

/// The user layer: what the user steps changed.
pub fn user_layer(base: &BaseTree, overlay: &Overlay) -> LayerPlan {
    let mut plan = LayerPlan::default();
    for (path, item) in &overlay.items {
        let entry = match &item.body {
            Body::Dir => Entry::Dir,
            Body::File(b) => Entry::Bytes(b.clone()),
            Body::Symlink(t) => Entry::Symlink(t.clone()),
        };
        plan.entries.insert(path.clone(), (item.attrs, entry));
    }
    plan.add_parents(base);
    plan
}

/// The venv layer: `venv` (a local directory) as `/root/.venv`, owned by `owner` (group 0:
/// `chown -R flytekit /root/.venv` after root made it), modes as a umask of 022 leaves them;
/// `/root` as `root_dir`; the install step's mount points.
pub fn venv_layer(
    base: &BaseTree,
    venv: &Path,
    owner: u64,
    root_dir: Attrs,
) -> Result<LayerPlan, DaemonlessError> {
    let mut plan = LayerPlan::default();
    plan.entries.insert("root".into(), (root_dir, Entry::Dir));
    let mount = Attrs {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };
    // BuildKit leaves the cache mount's target and the uv binary's directory in the layer.
    plan.entries
        .insert("root/.cache".into(), (mount, Entry::Dir));
    plan.entries
        .insert("root/.cache/uv".into(), (mount, Entry::Dir));
    if let Some(n) = base.node("usr/bin").filter(|n| n.kind == Kind::Dir) {
        let attrs = Attrs {
            uid: n.uid,
            gid: n.gid,
            mode: n.mode,
        };
        plan.entries.insert("usr/bin".into(), (attrs, Entry::Dir));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| DaemonlessError::Io {
            context: format!("reading the staged venv at {}", path.display()),
            source,
        }
    };
    for entry in walkdir::WalkDir::new(venv).sort_by_file_name() {
        let entry = entry.map_err(|e| DaemonlessError::Io {
            context: format!("reading the staged venv at {}", venv.display()),
            source: e.into(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(venv)
            .expect("walked below it")
            .to_string_lossy()
            .into_owned();
        let path = if rel.is_empty() {
            "root/.venv".to_string()
        } else {
            format!("root/.venv/{rel}")
        };
        let kind = entry.file_type();
        let attrs = |mode| Attrs {
            uid: owner,
            gid: 0,
            mode,
        };
        let item = if kind.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(io(entry.path()))?;
            (
                attrs(0o777),
                Entry::Symlink(target.to_string_lossy().into_owned()),
            )
        } else if kind.is_dir() {
            (attrs(0o755), Entry::Dir)
        } else {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry.metadata().map_err(|e| DaemonlessError::Io {
                context: format!("reading {}", entry.path().display()),
                source: e.into(),
            })?;
            let mode = if mode.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            (attrs(mode), Entry::File(entry.path().to_path_buf()))
        };
        plan.entries.insert(path, item);
    }
    plan.add_parents(base);
    Ok(plan)
}

/// Writes `plans` as layers (in a blocking task).
pub async fn write_layers(plans: Vec<LayerPlan>) -> Result<Vec<Layer>, DaemonlessError> {
    tokio::task::spawn_blocking(move || {
        let dir = std::env::temp_dir();
        plans
            .iter()
            .map(|p| p.write(&dir).map_err(DaemonlessError::from))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| DaemonlessError::Io {
        context: "writing the layers".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// What to push: the base's manifest, our layers and the config.
pub struct ToPush<'a> {
    pub base_image: &'a str,
    pub base_client: &'a RegistryClient,
    pub base_manifest: &'a OciImageManifest,
    pub layers: &'a [Layer],
    pub config: Vec<u8>,
    /// `<repository>:deps-<key>`.
    pub image: &'a str,
    /// Push the manifest under the tag (else by digest only: a platform of an index).
    pub tag: bool,
    /// Where the bytes of each upload are reported (step `push-deps`).
    pub progress: &'a crate::progress::Progress,
}

/// A pushed manifest.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub media_type: String,
    pub size: usize,
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(bytes);
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The manifest of the image: the base's layers, then ours, with the base's media types.
pub fn manifest(base: &OciImageManifest, layers: &[Layer], config: &[u8]) -> OciImageManifest {
    let docker =
        base.media_type.as_deref() == Some(oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE);
    let mut manifest = base.clone();
    manifest.config = OciDescriptor {
        media_type: base.config.media_type.clone(),
        digest: sha256(config),
        size: config.len() as i64,
        ..Default::default()
    };
    manifest.annotations = None;
    for layer in layers {
        manifest.layers.push(OciDescriptor {
            media_type: if docker {
                oci_client::manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE
            } else {
                oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE
            }
            .to_string(),
            digest: layer.digest.clone(),
            size: layer.size as i64,
            ..Default::default()
        });
    }
    manifest
}

/// Pushes the image: base layers (mounted from the base's repository when it is in the same
/// registry, else copied), our layers, the config, the manifest last.
pub async fn push(client: &RegistryClient, p: ToPush<'_>) -> Result<Pushed, DaemonlessError> {
    let manifest = manifest(p.base_manifest, p.layers, &p.config);
    let meter = |digest: &str, size: u64| p.progress.meter("push-deps", digest, size);
    let same_registry =
        crate::registry::registry_host(p.base_image) == crate::registry::registry_host(p.image);
    let copies = tempfile::tempdir().map_err(|source| DaemonlessError::Io {
        context: "a temporary directory".into(),
        source,
    })?;
    for layer in &p.base_manifest.layers {
        if client.has_blob(p.image, &layer.digest).await? {
            continue;
        }
        if same_registry
            && client
                .mount_blob(p.image, p.base_image, &layer.digest)
                .await
        {
            continue;
        }
        let file = copies.path().join(layer.digest.replace(':', "-"));
        p.base_client
            .blob_to_file(p.base_image, &layer.digest, &file)
            .await?;
        client
            .push_blob_file(
                p.image,
                &file,
                &layer.digest,
                layer.size as u64,
                Some(meter(&layer.digest, layer.size as u64)),
            )
            .await?;
        let _ = std::fs::remove_file(&file);
    }
    for layer in p.layers {
        client
            .push_blob_file(
                p.image,
                layer.path(),
                &layer.digest,
                layer.size,
                Some(meter(&layer.digest, layer.size)),
            )
            .await?;
    }
    client
        .push_blob_bytes(p.image, p.config.into(), &manifest.config.digest)
        .await?;
    let body = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let digest = sha256(&body);
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    let size = body.len();
    if p.tag {
        client
            .push_manifest(p.image, body.into(), &media_type)
            .await?;
    } else {
        client
            .push_manifest_by_digest(p.image, body.into(), &media_type, &digest)
            .await?;
    }
    Ok(Pushed {
        digest,
        media_type,
        size,
    })
}

/// Pushes an index of `platforms` (`os/arch[/variant]`, each with its pushed manifest)
/// under `image`'s tag: a Docker manifest list when the manifests are Docker's, else an
/// OCI index.
pub async fn push_index(
    client: &RegistryClient,
    image: &str,
    platforms: &[(String, Pushed)],
) -> Result<String, DaemonlessError> {
    let docker = platforms
        .iter()
        .all(|(_, p)| p.media_type == oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE);
    let entries: Vec<serde_json::Value> = platforms
        .iter()
        .map(|(platform, p)| {
            let mut parts = platform.split('/');
            let mut at = serde_json::json!({
                "os": parts.next().unwrap_or("linux"),
                "architecture": parts.next().unwrap_or("amd64"),
            });
            if let Some(variant) = parts.next() {
                at["variant"] = variant.into();
            }
            serde_json::json!({
                "mediaType": p.media_type,
                "digest": p.digest,
                "size": p.size,
                "platform": at,
            })
        })
        .collect();
    let media_type = if docker {
        oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE
    } else {
        oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE
    };
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
    let body = serde_json::to_vec(&index).expect("an index serialises");
    let digest = sha256(&body);
    client.push_manifest(image, body.into(), media_type).await?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::super::base::tests::layer;
    use super::super::user::Item;
    use super::*;

    #[test]
    fn layers_carry_every_parent_with_the_bases_attributes_and_are_reproducible() {
        let mut base = BaseTree::default();
        base.apply_layer(&layer(&[("etc", 'd', ""), ("home", 'd', "")])[..])
            .unwrap();
        let mut overlay = Overlay::default();
        overlay.items.insert(
            "home/flytekit/.profile".into(),
            Item {
                attrs: Attrs {
                    uid: 1000,
                    gid: 1000,
                    mode: 0o644,
                },
                body: Body::File(b"export PATH=/x\n".to_vec()),
            },
        );
        overlay.items.insert(
            "etc/passwd".into(),
            Item {
                attrs: Attrs {
                    uid: 0,
                    gid: 0,
                    mode: 0o644,
                },
                body: Body::File(b"root:x:0:0::/root:/bin/sh\n".to_vec()),
            },
        );
        let plan = user_layer(&base, &overlay);
        let paths: Vec<&str> = plan.entries.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "etc",
                "etc/passwd",
                "home",
                "home/flytekit",
                "home/flytekit/.profile"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let one = plan.write(dir.path()).unwrap();
        let two = user_layer(&base, &overlay).write(dir.path()).unwrap();
        assert_eq!((one.digest, one.diff_id), (two.digest, two.diff_id));
    }

    #[test]
    fn the_venv_layer_is_owned_by_the_user_with_umask_022_modes() {
        use std::os::unix::fs::PermissionsExt;
        let stage = tempfile::tempdir().unwrap();
        let venv = stage.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/tool"), "#!/root/.venv/bin/python\n").unwrap();
        std::fs::set_permissions(
            venv.join("bin/tool"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::fs::set_permissions(
            venv.join("pyvenv.cfg"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python")).unwrap();
        let mut base = BaseTree::default();
        base.apply_layer(&layer(&[("usr/bin", 'd', "")])[..])
            .unwrap();
        let root = Attrs {
            uid: 1000,
            gid: 0,
            mode: 0o700,
        };
        let plan = venv_layer(&base, &venv, 1000, root).unwrap();
        let got: Vec<(String, u32, u64, u64)> = plan
            .entries
            .iter()
            .map(|(p, (a, _))| (p.clone(), a.mode, a.uid, a.gid))
            .collect();
        let want = [
            ("root", 0o700, 1000, 0),
            ("root/.cache", 0o755, 0, 0),
            ("root/.cache/uv", 0o755, 0, 0),
            ("root/.venv", 0o755, 1000, 0),
            ("root/.venv/bin", 0o755, 1000, 0),
            ("root/.venv/bin/python", 0o777, 1000, 0),
            ("root/.venv/bin/tool", 0o755, 1000, 0),
            ("root/.venv/pyvenv.cfg", 0o644, 1000, 0),
            ("usr", 0o755, 0, 0),
            ("usr/bin", 0o755, 0, 0),
        ]
        .map(|(p, m, u, g)| (p.to_string(), m, u, g));
        assert_eq!(got, want);
    }
}
