//! The defaults file: settings that differ per environment (a CI runner's registry mirror, a
//! laptop's proxy CA, the base image a team builds on) and should not be written in every
//! spec. They are read from a `[defaults]` table:
//!
//! ```toml
//! [defaults]
//! base_image = "python:3.12-slim"        # only for specs without one: changes their name
//! ca_bundle = "certs/proxy-ca.pem"       # relative to this file
//! fast_path = true
//! buildkit_host = "tcp://buildkit.internal:1234"  # a remote BuildKit (docs/remote-builds.md)
//! [defaults.buildkit_tls]                 # its mTLS files, relative to this file
//! ca = "certs/buildkit-ca.pem"
//! cert = "certs/client.pem"
//! key = "certs/client-key.pem"
//! [defaults.builder_config]
//! uv_image = "mirror.example:5000/astral-sh/uv:0.5.1"
//! [defaults.registry_mirrors]
//! "docker.io" = "mirror.example:5000"
//! ```
//!
//! Where a setting comes from, highest first ([`choose`]): a command-line flag or
//! environment variable; the spec's own field; the project file (`imagespec.toml`, the
//! nearest one holding a `[defaults]` table, next to the spec or in a directory above it, up
//! to the repository root: the first directory with `.git`, else the filesystem root); the
//! user's file (`$XDG_CONFIG_HOME/imagespec/config.toml`, else
//! `~/.config/imagespec/config.toml`); the built-in default. `IMAGESPEC_CONFIG=FILE`
//! (`--config`) reads that file instead of both; `IMAGESPEC_NO_CONFIG=1` (`--no-config`)
//! reads none.
//!
//! flytekit knows nothing of these files, so a default may only change an image's name the
//! way the same field written in the spec would: `base_image` and `registry` are filled in
//! before the spec is hashed (exactly as if written; [`NAME_CHANGING`]); every other key is
//! used after the name is computed and never enters it (flytekit hashes `builder_config`
//! when the spec writes it, so a default `uv_image` is not put there, only used to build).
//!
//! ```
//! use imagespec::spec::defaults::DefaultValues;
//! let text = "[defaults.registry_mirrors]\n\"docker.io\" = \"mirror.example:5000\"\n";
//! let values = DefaultValues::parse(std::path::Path::new("/r/imagespec.toml"), text)
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(
//!     values.registry_mirrors.pull_ref(&"python:3.12-slim".parse()?).map(|i| i.to_string()),
//!     Some("mirror.example:5000/library/python:3.12-slim".to_string())
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::decode::{REGISTRY, did_you_mean, type_error};
use super::error::SpecError;
use super::node::{Key, Node, Value};
use super::normalize::NormalizedSpec;
use super::origin::FieldAt;
use crate::oci::reference::{DOCKER_HUB, ImageRef, Registry, Repository};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The project defaults file's name (it may be a spec file too: only its `[defaults]` table
/// is read as defaults, and the spec decoder skips that table).
pub const PROJECT_FILE: &str = "imagespec.toml";
/// The table defaults are read from, in every defaults file.
pub const TABLE: &str = "defaults";
/// Reads this file instead of discovering the project and user files.
pub const CONFIG_ENV: &str = "IMAGESPEC_CONFIG";
/// Reads no defaults file at all (tests, reproducible CI runs).
pub const NO_CONFIG_ENV: &str = "IMAGESPEC_NO_CONFIG";
/// Applies only the defaults that keep flytekit's name (not `base_image`, not `registry`):
/// for callers that have computed the name already, like the flytekit plugin.
pub const KEEP_NAME_ENV: &str = "IMAGESPEC_DEFAULTS_KEEP_NAME";

/// The keys of a `[defaults]` table that change an image's name when they apply: they are
/// hashed fields of flytekit's `ImageSpec`, filled in as if the spec had written them.
pub const NAME_CHANGING: [&str; 2] = ["base_image", "registry"];
/// Every key of a `[defaults]` table (`builder_config` and `registry_mirrors` are tables).
pub const KEYS: [&str; 13] = [
    "base_image",
    "registry",
    "builder_config",
    "ca_bundle",
    "registry_mirrors",
    "fast_path",
    "daemonless",
    "buildkit_host",
    "buildkit_tls",
    "sbom",
    "provenance",
    "jobs",
    "buildkit_hosts",
];
/// The keys of `[defaults.buildkit_tls]` (buildctl's `--tlscacert`, `--tlscert`,
/// `--tlskey`, `--tlsservername`).
pub const BUILDKIT_TLS_KEYS: [&str; 4] = ["ca", "cert", "key", "server_name"];

/// The TLS files of a connection to a remote builder, as buildctl's flags name them: `P` a
/// file, `S` a name (as a defaults file writes them, [`BuildkitTls`], or as a connection
/// uses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls<P, S> {
    /// `--tlscacert`: the CA that signed buildkitd's certificate (else the system's roots).
    pub ca: Option<P>,
    /// `--tlscert` and `--tlskey`: this client's certificate and key (mutual TLS).
    pub cert: Option<P>,
    pub key: Option<P>,
    /// `--tlsservername`: the name buildkitd's certificate must hold (else the host's).
    pub server_name: Option<S>,
}

impl<P, S> Default for Tls<P, S> {
    fn default() -> Self {
        Tls {
            ca: None,
            cert: None,
            key: None,
            server_name: None,
        }
    }
}

impl<P, S> Tls<P, S> {
    /// Whether any TLS option is given (then the connection uses TLS, as buildctl's does).
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some() || self.server_name.is_some()
    }
}

/// `[defaults.buildkit_tls]`: the remote builder's TLS files (resolved against the file's
/// directory) and the name its certificate holds.
pub type BuildkitTls = Tls<Setting<PathBuf>, Setting<String>>;
/// The keys of `[defaults.builder_config]`.
pub const BUILDER_CONFIG_KEYS: [&str; 2] = ["uv_image", "micromamba_image"];

/// A value from a defaults file and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub at: FieldAt,
}

/// `[defaults.registry_mirrors]`: registry host → where its images are read from instead
/// (`host[:port][/path]`). Docker Hub is `docker.io` (also written `index.docker.io` or
/// `registry-1.docker.io`), its official images under `library/`, as docker resolves them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistryMirrors(IndexMap<String, Setting<String>>);

/// Docker Hub's names, all meaning the registry `docker.io`.
fn hub_key(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

impl RegistryMirrors {
    /// The mirrors by registry host, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Setting<String>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether no mirror is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where `image` is read from: the same repository, tag and digest in its registry's
    /// mirror; `None` when no mirror is set for its registry (or the mirrored name would be
    /// no valid name). The image's name is not changed by this: it names what to pull, not
    /// what was hashed.
    pub fn pull_ref(&self, image: &ImageRef) -> Option<ImageRef> {
        let host = image.host().to_ascii_lowercase();
        let host = hub_key(&host);
        let mirror = self.0.get(host)?;
        let path = image.repository();
        let path = if host == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let registry = Registry::parse(&mirror.value).ok().flatten()?;
        let repository = Repository::new(Some(&registry), &path).ok()?;
        Some(image.in_repository(repository))
    }
}

/// The values of one `[defaults]` table (or several merged, [`DefaultValues::over`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DefaultValues {
    pub base_image: Option<Setting<String>>,
    pub registry: Option<Setting<String>>,
    pub uv_image: Option<Setting<ImageRef>>,
    pub micromamba_image: Option<Setting<ImageRef>>,
    /// Resolved against the directory of the file that names it.
    pub ca_bundle: Option<Setting<PathBuf>>,
    pub registry_mirrors: RegistryMirrors,
    pub fast_path: Option<Setting<bool>>,
    pub daemonless: Option<Setting<bool>>,
    pub sbom: Option<Setting<bool>>,
    /// SLSA provenance beside the SBOM (`--provenance`, `IMAGESPEC_NO_PROVENANCE`); no SBOM,
    /// no provenance.
    pub provenance: Option<Setting<bool>>,
    /// A remote buildkitd, `tcp://HOST:PORT` or `unix:///PATH` (never part of the name).
    pub buildkit_host: Option<Setting<String>>,
    /// The TLS files for it, taken with the host of the same file.
    pub buildkit_tls: BuildkitTls,
    /// Several remote buildkitds, images spread over them (`--builder-host` given twice);
    /// the TLS files of `buildkit_tls` serve them all.
    pub buildkit_hosts: Option<Setting<Vec<String>>>,
    /// How many images build at once (`--jobs`, `IMAGESPEC_JOBS`), at least 1.
    pub jobs: Option<Setting<u32>>,
}

impl DefaultValues {
    /// Reads the `[defaults]` table of the TOML file `path` holding `text`; `None` when it
    /// has none. In an `imagespec.toml` the other top-level keys are a spec's and are left
    /// alone; any other defaults file holds nothing but `[defaults]`.
    pub fn parse(path: &Path, text: &str) -> Result<Option<DefaultValues>, SpecError> {
        let root = super::toml::parse(text).map_err(|e| SpecError::Syntax {
            file: path.to_path_buf(),
            pos: e.pos,
            message: e.message,
        })?;
        let reader = Reader {
            file: path.to_path_buf(),
        };
        let Value::Map(entries) = &root.value else {
            return Ok(None);
        };
        let lenient = path.file_name().is_some_and(|n| n == PROJECT_FILE);
        let mut table = None;
        for (key, node) in entries {
            if key.name == TABLE {
                table = Some(node);
            } else if !lenient {
                return Err(reader.invalid(
                    key,
                    &key.name,
                    &format!(
                        "a config file holds only a `[{TABLE}]` table; write `{}` under \
                         `[{TABLE}]` (its keys: {})",
                        key.name,
                        KEYS.join(", ")
                    ),
                ));
            }
        }
        let Some(table) = table else {
            return Ok(None);
        };
        // The spec's rule: no string holds a control character (a default `uv_image` is
        // written into a `FROM` line as a spec's would be).
        let mut at = vec![super::node::Segment::Key(TABLE)];
        super::control::check_tree(path, table, &mut at)?;
        reader.values(table).map(Some)
    }

    /// `self` over `lower`, key by key (and mirror by mirror): the project file's values
    /// over the user's.
    pub fn over(self, lower: DefaultValues) -> DefaultValues {
        let mut mirrors = lower.registry_mirrors.0;
        for (host, mirror) in self.registry_mirrors.0 {
            mirrors.insert(host, mirror);
        }
        DefaultValues {
            base_image: self.base_image.or(lower.base_image),
            registry: self.registry.or(lower.registry),
            uv_image: self.uv_image.or(lower.uv_image),
            micromamba_image: self.micromamba_image.or(lower.micromamba_image),
            ca_bundle: self.ca_bundle.or(lower.ca_bundle),
            registry_mirrors: RegistryMirrors(mirrors),
            fast_path: self.fast_path.or(lower.fast_path),
            daemonless: self.daemonless.or(lower.daemonless),
            sbom: self.sbom.or(lower.sbom),
            provenance: self.provenance.or(lower.provenance),
            // The TLS files go with their host: one file's pair, not a mix.
            buildkit_tls: if self.buildkit_host.is_some()
                || self.buildkit_hosts.is_some()
                || (lower.buildkit_host.is_none() && lower.buildkit_hosts.is_none())
            {
                self.buildkit_tls
            } else {
                lower.buildkit_tls
            },
            buildkit_host: self.buildkit_host.or(lower.buildkit_host),
            buildkit_hosts: self.buildkit_hosts.or(lower.buildkit_hosts),
            jobs: self.jobs.or(lower.jobs),
        }
    }
}

/// Decodes a `[defaults]` table, each error located like a spec's.
struct Reader {
    file: PathBuf,
}

impl Reader {
    fn at(&self, node: &Node, field: &str) -> FieldAt {
        FieldAt::new(self.file.clone(), node.pos, field.to_string())
    }

    fn invalid(&self, key: &Key, field: &str, message: &str) -> SpecError {
        SpecError::Invalid {
            file: self.file.clone(),
            pos: key.pos,
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    fn unknown(&self, key: &Key, field: &str, known: &[&str]) -> SpecError {
        SpecError::UnknownField {
            file: self.file.clone(),
            pos: key.pos,
            field: field.to_string(),
            suggestion: did_you_mean(&key.name, known),
        }
    }

    fn table<'n>(&self, node: &'n Node, field: &str) -> Result<&'n [(Key, Node)], SpecError> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            _ => Err(type_error(&self.file, node, field, "a table")),
        }
    }

    fn string(&self, node: &Node, field: &str) -> Result<Setting<String>, SpecError> {
        match &node.value {
            Value::Str(s) => Ok(Setting {
                value: s.clone(),
                at: self.at(node, field),
            }),
            _ => Err(type_error(&self.file, node, field, "a string")),
        }
    }

    fn boolean(&self, node: &Node, field: &str) -> Result<Setting<bool>, SpecError> {
        match &node.value {
            Value::Bool(b) => Ok(Setting {
                value: *b,
                at: self.at(node, field),
            }),
            _ => Err(type_error(&self.file, node, field, "true or false")),
        }
    }

    /// An image reference, checked as a spec's `base_image` is.
    /// An image reference, parsed.
    fn image(&self, node: &Node, field: &str) -> Result<Setting<ImageRef>, SpecError> {
        let setting = self.string(node, field)?;
        let value = setting
            .value
            .parse::<ImageRef>()
            .map_err(|e| SpecError::Type {
                file: self.file.clone(),
                pos: node.pos,
                field: field.to_string(),
                expected: e.expected,
                found: e.found,
            })?;
        Ok(Setting {
            value,
            at: setting.at,
        })
    }

    /// A `base_image`: checked as an image reference, kept as written (it stands for the
    /// spec's own `base_image`, which flytekit hashes as a string).
    fn base_image(&self, node: &Node, field: &str) -> Result<Setting<String>, SpecError> {
        self.image(node, field)?;
        self.string(node, field)
    }

    /// A registry, checked as a spec's `registry` is (flytekit's pattern, then the OCI
    /// grammar).
    fn registry(&self, node: &Node, field: &str) -> Result<Setting<String>, SpecError> {
        let setting = self.string(node, field)?;
        let lowered = setting.value.to_lowercase();
        let refused = |expected: String, found: String| SpecError::Type {
            file: self.file.clone(),
            pos: node.pos,
            field: field.to_string(),
            expected,
            found,
        };
        if lowered.is_empty() || !REGISTRY.is_match(&lowered) {
            return Err(refused(
                "a registry, e.g. `localhost:30000`, `ghcr.io/username` or `docker.io/username`"
                    .into(),
                format!("{:?}", setting.value),
            ));
        }
        Registry::parse(&lowered).map_err(|e| refused(e.expected, e.found))?;
        Ok(setting)
    }

    fn values(&self, table: &Node) -> Result<DefaultValues, SpecError> {
        let mut values = DefaultValues::default();
        for (key, node) in self.table(table, TABLE)? {
            let field = format!("{TABLE}.{}", key.name);
            let f = field.as_str();
            match key.name.as_str() {
                "base_image" => values.base_image = Some(self.base_image(node, f)?),
                "registry" => values.registry = Some(self.registry(node, f)?),
                "ca_bundle" => values.ca_bundle = Some(self.ca_bundle(node, f)?),
                "fast_path" => values.fast_path = Some(self.boolean(node, f)?),
                "daemonless" => values.daemonless = Some(self.boolean(node, f)?),
                "sbom" => values.sbom = Some(self.boolean(node, f)?),
                "provenance" => values.provenance = Some(self.boolean(node, f)?),
                "buildkit_host" => values.buildkit_host = Some(self.buildkit_host(node, f)?),
                "buildkit_tls" => values.buildkit_tls = self.buildkit_tls(node, f)?,
                "buildkit_hosts" => values.buildkit_hosts = Some(self.buildkit_hosts(node, f)?),
                "jobs" => values.jobs = Some(self.jobs(node, f)?),
                "builder_config" => {
                    for (k, v) in self.table(node, f)? {
                        let field = format!("{f}.{}", k.name);
                        match k.name.as_str() {
                            "uv_image" => values.uv_image = Some(self.image(v, &field)?),
                            "micromamba_image" => {
                                values.micromamba_image = Some(self.image(v, &field)?)
                            }
                            _ => return Err(self.unknown(k, &field, &BUILDER_CONFIG_KEYS)),
                        }
                    }
                }
                "registry_mirrors" => {
                    for (k, v) in self.table(node, f)? {
                        let field = format!("{f}.{}", k.name);
                        let host = k.name.to_ascii_lowercase();
                        if host.contains('/') || Registry::parse(&host).is_err() || host.is_empty()
                        {
                            return Err(self.invalid(
                                k,
                                &field,
                                "a key of `registry_mirrors` is a registry host[:port] as image \
                                 names start with it (`docker.io` for Docker Hub), e.g. \
                                 `\"ghcr.io\" = \"mirror.example:5000/ghcr\"`",
                            ));
                        }
                        let mirror = self.registry(v, &field)?;
                        values
                            .registry_mirrors
                            .0
                            .insert(hub_key(&host).to_string(), mirror);
                    }
                }
                _ => return Err(self.unknown(key, f, &KEYS)),
            }
        }
        Ok(values)
    }

    /// A builder address as `BUILDKIT_HOST` takes it.
    fn buildkit_host(&self, node: &Node, field: &str) -> Result<Setting<String>, SpecError> {
        let setting = self.string(node, field)?;
        let scheme = ["tcp://", "unix:///"]
            .iter()
            .any(|s| setting.value.starts_with(s));
        if !scheme {
            return Err(type_error(
                &self.file,
                node,
                field,
                "a builder address, tcp://HOST:PORT or unix:///PATH",
            ));
        }
        Ok(setting)
    }

    /// A list of builder addresses, at least one.
    fn buildkit_hosts(&self, node: &Node, field: &str) -> Result<Setting<Vec<String>>, SpecError> {
        let expected = "a list of builder addresses, [\"tcp://HOST:PORT\", ...]";
        let Value::List(items) = &node.value else {
            return Err(type_error(&self.file, node, field, expected));
        };
        if items.is_empty() {
            return Err(type_error(&self.file, node, field, expected));
        }
        let hosts = items
            .iter()
            .map(|item| self.buildkit_host(item, field).map(|s| s.value))
            .collect::<Result<_, _>>()?;
        Ok(Setting {
            value: hosts,
            at: self.at(node, field),
        })
    }

    /// How many images build at once: a whole number from 1.
    fn jobs(&self, node: &Node, field: &str) -> Result<Setting<u32>, SpecError> {
        match &node.value {
            Value::Int(n) if *n >= 1 && *n <= i128::from(u32::MAX) => Ok(Setting {
                value: *n as u32,
                at: self.at(node, field),
            }),
            _ => Err(type_error(&self.file, node, field, "a whole number from 1")),
        }
    }

    /// `[defaults.buildkit_tls]`: the files must exist.
    fn buildkit_tls(&self, node: &Node, field: &str) -> Result<BuildkitTls, SpecError> {
        let mut tls = BuildkitTls::default();
        for (k, v) in self.table(node, field)? {
            let f = format!("{field}.{}", k.name);
            match k.name.as_str() {
                "ca" => tls.ca = Some(self.file_path(v, &f, "a PEM file of CA certificates")?),
                "cert" => tls.cert = Some(self.file_path(v, &f, "a PEM client certificate")?),
                "key" => tls.key = Some(self.file_path(v, &f, "a PEM private key")?),
                "server_name" => tls.server_name = Some(self.string(v, &f)?),
                _ => return Err(self.unknown(k, &f, &BUILDKIT_TLS_KEYS)),
            }
        }
        Ok(tls)
    }

    /// A PEM bundle, relative to the defaults file's directory; it must be a file.
    fn ca_bundle(&self, node: &Node, field: &str) -> Result<Setting<PathBuf>, SpecError> {
        self.file_path(node, field, "a PEM bundle of CA certificates")
    }

    /// A file (`what`), relative to the defaults file's directory; it must be a file.
    fn file_path(
        &self,
        node: &Node,
        field: &str,
        what: &str,
    ) -> Result<Setting<PathBuf>, SpecError> {
        let written = self.string(node, field)?;
        let dir = self
            .file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let path = dir.join(&written.value);
        let path = std::path::absolute(&path).unwrap_or(path);
        if !path.is_file() {
            return Err(SpecError::Invalid {
                file: self.file.clone(),
                pos: node.pos,
                field: field.to_string(),
                message: format!(
                    "{} is not a file ({what}; a relative path is relative to this file's \
                     directory)",
                    path.display()
                ),
            });
        }
        Ok(Setting {
            value: path,
            at: written.at,
        })
    }
}

/// Which defaults files a command reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigChoice {
    /// The project file found from the spec's directory, over the user's file (if any).
    Discover { user: Option<PathBuf> },
    /// This file only (`--config`, `IMAGESPEC_CONFIG`).
    File(PathBuf),
    /// None (`--no-config`, `IMAGESPEC_NO_CONFIG`).
    Off,
}

impl ConfigChoice {
    /// The choice `--config`/`IMAGESPEC_CONFIG` and `--no-config`/`IMAGESPEC_NO_CONFIG` make
    /// (no files wins: it is the switch for reproducible runs), with the user's file found
    /// from `XDG_CONFIG_HOME` and `HOME` ([`user_file`]).
    pub fn new(config: Option<PathBuf>, no_config: bool) -> ConfigChoice {
        match (no_config, config) {
            (true, _) => ConfigChoice::Off,
            (false, Some(file)) => ConfigChoice::File(file),
            (false, None) => ConfigChoice::Discover {
                user: user_file(
                    std::env::var_os("XDG_CONFIG_HOME").as_deref(),
                    std::env::var_os("HOME").as_deref(),
                ),
            },
        }
    }
}

/// The user's defaults file: `$XDG_CONFIG_HOME/imagespec/config.toml` when that variable is
/// an absolute path (the XDG base directory rule: a relative one is ignored), else
/// `$HOME/.config/imagespec/config.toml`.
pub fn user_file(
    xdg_config_home: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Option<PathBuf> {
    let base = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.filter(|h| !h.is_empty())
                .map(|h| Path::new(h).join(".config"))
        })?;
    Some(base.join("imagespec").join("config.toml"))
}

/// The defaults a spec file's images get, and the files they were read from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Defaults {
    /// The merged values (the project file's over the user's).
    pub values: DefaultValues,
    /// The files read, highest precedence first.
    pub files: Vec<PathBuf>,
    /// [`KEEP_NAME_ENV`]: `base_image` and `registry` defaults are not applied.
    pub keep_name: bool,
}

impl Defaults {
    /// Reads the defaults `choice` names for a spec in `spec_dir` (absolute).
    pub fn load(
        choice: &ConfigChoice,
        spec_dir: &Path,
        keep_name: bool,
    ) -> Result<Self, SpecError> {
        let mut defaults = Defaults {
            keep_name,
            ..Defaults::default()
        };
        match choice {
            ConfigChoice::Off => {}
            ConfigChoice::File(file) => {
                let text = read(file)?;
                defaults.values = DefaultValues::parse(file, &text)?.unwrap_or_default();
                defaults.files.push(file.clone());
            }
            ConfigChoice::Discover { user } => {
                if let Some((file, values)) = project_defaults(spec_dir)? {
                    defaults.values = values;
                    defaults.files.push(file);
                }
                if let Some(file) = user.as_ref().filter(|f| f.is_file()) {
                    let text = read(file)?;
                    if let Some(values) = DefaultValues::parse(file, &text)? {
                        defaults.values = std::mem::take(&mut defaults.values).over(values);
                        defaults.files.push(file.clone());
                    }
                }
            }
        }
        Ok(defaults)
    }
}

fn read(file: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(file).map_err(|source| SpecError::ReadDefaults {
        file: file.to_path_buf(),
        source: Arc::new(source),
    })
}

/// The nearest `imagespec.toml` with a `[defaults]` table from `start` up: in `start`, then
/// each parent, stopping after the repository root (the first directory holding `.git`, a
/// directory or a worktree's file) or at the filesystem root. An `imagespec.toml` without
/// the table (a spec file of that name) is passed over.
pub fn project_defaults(start: &Path) -> Result<Option<(PathBuf, DefaultValues)>, SpecError> {
    for dir in start.ancestors() {
        let candidate = dir.join(PROJECT_FILE);
        if candidate.is_file() {
            let text = read(&candidate)?;
            if let Some(values) = DefaultValues::parse(&candidate, &text)? {
                return Ok(Some((candidate, values)));
            }
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    Ok(None)
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A command-line flag or environment variable, by name.
    Flag(String),
    /// The spec's own field.
    Spec,
    /// A defaults file.
    File(FieldAt),
    /// imagespec's (or flytekit's) own default.
    BuiltIn,
}

/// The precedence of every setting: a flag or environment variable, else the spec's own
/// field, else a defaults file's value (the project file's over the user's: already merged,
/// [`DefaultValues::over`]), else the built-in default.
pub fn choose<T: Clone>(
    flag: Option<(T, &str)>,
    spec: Option<T>,
    file: Option<&Setting<T>>,
    built_in: T,
) -> (T, Source) {
    if let Some((value, name)) = flag {
        return (value, Source::Flag(name.to_string()));
    }
    if let Some(value) = spec {
        return (value, Source::Spec);
    }
    if let Some(setting) = file {
        return (setting.value.clone(), Source::File(setting.at.clone()));
    }
    (built_in, Source::BuiltIn)
}

/// A build switch that an `IMAGESPEC_NO_…` variable turns off (`fast_path`, `daemonless`):
/// the variable when set (flytekit's `str2bool`: anything but false/0/off/no is true), else
/// the defaults file's value, else on.
pub fn switch(no_env: Option<&str>, file: Option<&Setting<bool>>) -> bool {
    let env = no_env.map(|v| matches!(v.to_lowercase().as_str(), "false" | "0" | "off" | "no"));
    choose(env.map(|on| (on, "")), None, file, true).0
}

/// What overrides the run-time defaults of one command: the flag or variable that was set,
/// by name.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub ca_bundle: Option<String>,
    pub fast_path: Option<String>,
    pub daemonless: Option<String>,
    /// `--builder-host` or `BUILDKIT_HOST`, over `buildkit_host`.
    pub buildkit_host: Option<String>,
}

impl Overrides {
    /// The variables set in this process (`inspect`, which takes no build flags).
    pub fn from_env() -> Overrides {
        let set = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(|_| name.to_string())
        };
        Overrides {
            ca_bundle: set("IMAGESPEC_CA_BUNDLE"),
            fast_path: set("IMAGESPEC_NO_FAST_PATH"),
            daemonless: set("IMAGESPEC_NO_DAEMONLESS"),
            buildkit_host: set("BUILDKIT_HOST"),
        }
    }
}

/// One default of the files, and what became of it for one image: for `inspect` and
/// `plan`, so that a user can tell why a name changed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DefaultUse {
    /// `base_image`, `builder_config.uv_image`, `registry_mirrors.docker.io`...
    pub key: String,
    pub value: serde_json::Value,
    /// `file:line:column`.
    pub from: String,
    /// Whether this image uses it.
    pub applied: bool,
    /// Whether it changed the image's name (applied, and one of [`NAME_CHANGING`]).
    pub changes_name: bool,
    /// What took precedence, when it is not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<String>,
}

/// The defaults of `spec`'s files, each with whether it applies to `spec`.
pub fn uses(spec: &NormalizedSpec, overrides: &Overrides) -> Vec<DefaultUse> {
    let values = &spec.defaults().values;
    let mut out = Vec::new();
    let mut push =
        |key: &str, value: serde_json::Value, at: &FieldAt, overridden_by: Option<String>| {
            let applied = overridden_by.is_none();
            out.push(DefaultUse {
                key: key.to_string(),
                value,
                from: format!("{}:{}", at.file().display(), at.pos()),
                applied,
                changes_name: applied && NAME_CHANGING.contains(&key),
                overridden_by,
            });
        };
    let keep_name = || Some(format!("{KEEP_NAME_ENV} (keeps flytekit's name)"));
    for (key, setting) in [
        ("registry", &values.registry),
        ("base_image", &values.base_image),
    ] {
        if let Some(s) = setting {
            let by = if spec.from_defaults().contains(&key) {
                None
            } else if spec.defaults().keep_name {
                keep_name()
            } else {
                Some(format!("the spec's `{key}`"))
            };
            push(key, serde_json::json!(s.value), &s.at, by);
        }
    }
    for (key, setting) in [
        ("uv_image", &values.uv_image),
        ("micromamba_image", &values.micromamba_image),
    ] {
        if let Some(s) = setting {
            let written = spec.builder_config.iter().flatten().any(|(k, _)| k == key);
            let by = written.then(|| format!("the spec's `builder_config.{key}`"));
            let key = format!("builder_config.{key}");
            push(&key, serde_json::json!(s.value), &s.at, by);
        }
    }
    if let Some(s) = &values.ca_bundle {
        let value = serde_json::json!(s.value.display().to_string());
        push("ca_bundle", value, &s.at, overrides.ca_bundle.clone());
    }
    for (host, s) in values.registry_mirrors.iter() {
        let key = format!("registry_mirrors.{host}");
        push(&key, serde_json::json!(s.value), &s.at, None);
    }
    if let Some(s) = &values.fast_path {
        push(
            "fast_path",
            serde_json::json!(s.value),
            &s.at,
            overrides.fast_path.clone(),
        );
    }
    if let Some(s) = &values.daemonless {
        let by = overrides.daemonless.clone();
        push("daemonless", serde_json::json!(s.value), &s.at, by);
    }
    if let Some(s) = &values.sbom {
        push("sbom", serde_json::json!(s.value), &s.at, None);
    }
    if let Some(s) = &values.provenance {
        push("provenance", serde_json::json!(s.value), &s.at, None);
    }
    if let Some(s) = &values.buildkit_host {
        let by = overrides.buildkit_host.clone();
        push("buildkit_host", serde_json::json!(s.value), &s.at, by);
    }
    if let Some(s) = &values.buildkit_hosts {
        let by = overrides.buildkit_host.clone();
        push("buildkit_hosts", serde_json::json!(s.value), &s.at, by);
    }
    if let Some(s) = &values.jobs {
        push("jobs", serde_json::json!(s.value), &s.at, None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DefaultValues {
        DefaultValues::parse(Path::new("/r/imagespec.toml"), text)
            .expect("parses")
            .expect("has [defaults]")
    }

    fn error(name: &str, text: &str) -> String {
        DefaultValues::parse(Path::new(name), text)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn precedence_is_flag_then_spec_then_file_then_built_in() {
        let at = FieldAt::new("/r/imagespec.toml".into(), Default::default(), "x".into());
        let file = Setting {
            value: "file",
            at: at.clone(),
        };
        assert_eq!(
            choose(Some(("flag", "--x")), Some("spec"), Some(&file), "built-in"),
            ("flag", Source::Flag("--x".into()))
        );
        assert_eq!(
            choose(None, Some("spec"), Some(&file), "built-in"),
            ("spec", Source::Spec)
        );
        assert_eq!(
            choose(None, None, Some(&file), "built-in"),
            ("file", Source::File(at))
        );
        assert_eq!(
            choose(None, None, None, "built-in"),
            ("built-in", Source::BuiltIn)
        );
    }

    #[test]
    fn sbom_and_provenance_are_read_merged_and_checked() {
        let project = parse("[defaults]\nprovenance = false\n");
        let user = parse("[defaults]\nsbom = true\nprovenance = true\n");
        assert_eq!(project.provenance.as_ref().map(|s| s.value), Some(false));
        let merged = project.over(user);
        assert_eq!(merged.provenance.as_ref().map(|s| s.value), Some(false));
        assert_eq!(merged.sbom.as_ref().map(|s| s.value), Some(true));
        assert!(!switch(None, merged.provenance.as_ref()));
        assert!(switch(Some("false"), merged.provenance.as_ref()));
        let at = merged.provenance.unwrap().at;
        assert_eq!(at.file(), Path::new("/r/imagespec.toml"));
        let refused = error("/r/imagespec.toml", "[defaults]\nprovenance = \"no\"\n");
        assert!(refused.contains("defaults.provenance"), "{refused}");
        let unknown = error("/r/imagespec.toml", "[defaults]\nprovenanse = false\n");
        assert!(unknown.contains("did you mean `provenance`"), "{unknown}");
    }

    #[test]
    fn jobs_and_several_builders_are_read_and_checked() {
        let values =
            parse("[defaults]\njobs = 3\nbuildkit_hosts = [\"tcp://a:1\", \"tcp://b:2\"]\n");
        assert_eq!(values.jobs.unwrap().value, 3);
        assert_eq!(
            values.buildkit_hosts.unwrap().value,
            ["tcp://a:1", "tcp://b:2"]
        );
        for (text, expected) in [
            ("jobs = 0", "a whole number from 1"),
            ("jobs = \"2\"", "a whole number from 1"),
            ("buildkit_hosts = []", "a list of builder addresses"),
            (
                "buildkit_hosts = \"tcp://a:1\"",
                "a list of builder addresses",
            ),
            ("buildkit_hosts = [\"a:1\"]", "tcp://HOST:PORT"),
        ] {
            let err = error("/r/imagespec.toml", &format!("[defaults]\n{text}\n"));
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_remote_builder_and_its_tls_files_are_read_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        for f in ["ca.pem", "client.pem", "client-key.pem"] {
            std::fs::write(dir.path().join("certs").join(f), "").unwrap();
        }
        let file = dir.path().join("imagespec.toml");
        let text = "[defaults]\nbuildkit_host = \"tcp://b:1234\"\n[defaults.buildkit_tls]\n\
                    ca = \"certs/ca.pem\"\ncert = \"certs/client.pem\"\n\
                    key = \"certs/client-key.pem\"\nserver_name = \"buildkitd\"\n";
        let values = DefaultValues::parse(&file, text).unwrap().unwrap();
        assert_eq!(values.buildkit_host.unwrap().value, "tcp://b:1234");
        let tls = values.buildkit_tls;
        assert_eq!(tls.ca.unwrap().value, dir.path().join("certs/ca.pem"));
        assert_eq!(
            tls.key.unwrap().value,
            dir.path().join("certs/client-key.pem")
        );
        assert_eq!(tls.server_name.unwrap().value, "buildkitd");

        let wrong = error(
            "/r/imagespec.toml",
            "[defaults]\nbuildkit_host = \"b:1234\"\n",
        );
        assert!(wrong.contains("tcp://HOST:PORT or unix:///PATH"), "{wrong}");
        let missing = error(
            "/r/imagespec.toml",
            "[defaults.buildkit_tls]\ncert = \"nope.pem\"\n",
        );
        assert!(
            missing.contains("is not a file (a PEM client certificate"),
            "{missing}"
        );
        let unknown = error(
            "/r/imagespec.toml",
            "[defaults.buildkit_tls]\ncacert = \"x\"\n",
        );
        assert!(unknown.contains("buildkit_tls.cacert"), "{unknown}");
    }

    #[test]
    fn the_tls_files_go_with_the_host_of_their_file() {
        let at = FieldAt::new("/f".into(), Default::default(), "x".into());
        let setting = |v: &str| Setting {
            value: v.to_string(),
            at: at.clone(),
        };
        let tls = |name: &str| BuildkitTls {
            server_name: Some(setting(name)),
            ..Default::default()
        };
        let project = DefaultValues {
            buildkit_tls: tls("project"),
            ..Default::default()
        };
        let user = DefaultValues {
            buildkit_host: Some(setting("tcp://user:1")),
            buildkit_tls: tls("user"),
            ..Default::default()
        };
        let merged = project.over(user.clone());
        assert_eq!(merged.buildkit_host.unwrap().value, "tcp://user:1");
        assert_eq!(merged.buildkit_tls.server_name.unwrap().value, "user");
        let hosted = DefaultValues {
            buildkit_host: Some(setting("tcp://project:1")),
            buildkit_tls: tls("project"),
            ..Default::default()
        };
        let merged = hosted.over(user);
        assert_eq!(merged.buildkit_tls.server_name.unwrap().value, "project");
    }

    #[test]
    fn the_project_file_wins_over_the_users_key_by_key() {
        let project = parse(
            "[defaults]\nfast_path = false\n[defaults.registry_mirrors]\n\"docker.io\" = \"p:5000\"\n",
        );
        let user = DefaultValues::parse(
            Path::new("/home/u/.config/imagespec/config.toml"),
            "[defaults]\nfast_path = true\nbase_image = \"u/base:1\"\n\
             [defaults.registry_mirrors]\n\"docker.io\" = \"u:5000\"\n\"ghcr.io\" = \"u:5001\"\n",
        )
        .unwrap()
        .unwrap();
        let merged = project.over(user);
        assert_eq!(merged.fast_path.map(|s| s.value), Some(false));
        assert_eq!(
            merged.base_image.map(|s| s.value).as_deref(),
            Some("u/base:1")
        );
        let mirrors: Vec<_> = merged
            .registry_mirrors
            .iter()
            .map(|(h, s)| (h.to_string(), s.value.clone()))
            .collect();
        assert_eq!(
            mirrors,
            [
                ("docker.io".into(), "p:5000".into()),
                ("ghcr.io".into(), "u:5001".into())
            ]
        );
    }

    #[test]
    fn switches_follow_the_variable_then_the_file() {
        let at = FieldAt::new("f".into(), Default::default(), "defaults.fast_path".into());
        let off = Setting {
            value: false,
            at: at.clone(),
        };
        let on = Setting { value: true, at };
        assert!(switch(None, None));
        assert!(!switch(None, Some(&off)));
        assert!(
            switch(Some("false"), Some(&off)),
            "IMAGESPEC_NO_…=false turns it on"
        );
        assert!(!switch(Some("1"), Some(&on)));
        assert!(!switch(Some("yes"), None));
    }

    #[test]
    fn mirrors_rewrite_the_registry_only() {
        let values = parse(
            "[defaults.registry_mirrors]\n\"index.docker.io\" = \"m:5000/hub\"\n\
             \"mirror-me.invalid\" = \"localhost:5000\"\n\"GHCR.io\" = \"m:5000\"\n",
        );
        let m = &values.registry_mirrors;
        let pinned = format!("org/app@sha256:{}", "0".repeat(64));
        let pinned_mirrored = format!("m:5000/hub/{pinned}");
        let cases = [
            (
                "python:3.12-slim",
                Some("m:5000/hub/library/python:3.12-slim"),
            ),
            ("docker.io/python:3", Some("m:5000/hub/library/python:3")),
            (pinned.as_str(), Some(pinned_mirrored.as_str())),
            (
                "mirror-me.invalid/debian-python:bookworm",
                Some("localhost:5000/debian-python:bookworm"),
            ),
            (
                "ghcr.io/astral-sh/uv:0.5.1",
                Some("m:5000/astral-sh/uv:0.5.1"),
            ),
            ("localhost:5000/x:1", None),
            ("quay.io/a/b", None),
        ];
        for (image, want) in cases {
            let image: ImageRef = image.parse().unwrap();
            let pulled = m.pull_ref(&image).map(|i| i.to_string());
            assert_eq!(pulled.as_deref(), want, "{image}");
        }
    }

    #[test]
    fn unknown_keys_are_located_with_a_suggestion() {
        let text = "name = \"spec\"\n[defaults]\nbase_imag = \"x\"\n";
        assert_eq!(
            error("/r/imagespec.toml", text),
            "/r/imagespec.toml:3:1: unknown field `defaults.base_imag`; did you mean `base_image`?"
        );
        let text = "[defaults.builder_config]\nuv = \"x\"\n";
        assert_eq!(
            error("/r/imagespec.toml", text),
            "/r/imagespec.toml:2:1: unknown field `defaults.builder_config.uv`"
        );
        let message = error("/r/imagespec.toml", "[defaults]\nfast_path = \"no\"\n");
        let want = ":2:13: `defaults.fast_path`: expected true or false, found the string \"no\"";
        assert!(message.contains(want), "{message}");
        let message = error("/h/config.toml", "base_image = \"x\"\n");
        let want =
            "/h/config.toml:1:1: `base_image`: a config file holds only a `[defaults]` table";
        assert!(message.starts_with(want), "{message}");
        let text = "[defaults]\nbase_image = \"Not A Ref\"\n";
        assert!(error("/r/imagespec.toml", text).contains(":2:14: `defaults.base_image`: "));
    }

    #[test]
    fn the_user_file_follows_xdg() {
        let p = |x: Option<&str>, h: Option<&str>| {
            user_file(x.map(std::ffi::OsStr::new), h.map(std::ffi::OsStr::new))
        };
        assert_eq!(
            p(Some("/x"), Some("/h")),
            Some(PathBuf::from("/x/imagespec/config.toml"))
        );
        assert_eq!(
            p(Some("rel"), Some("/h")),
            Some(PathBuf::from("/h/.config/imagespec/config.toml"))
        );
        assert_eq!(
            p(None, Some("/h")),
            Some(PathBuf::from("/h/.config/imagespec/config.toml"))
        );
        assert_eq!(p(None, None), None);
    }

    /// id, tag and image of the only image of `spec` (TOML) in `dir`, with `defaults`.
    fn names(dir: &Path, spec: &str, defaults: Defaults) -> [String; 3] {
        let file = crate::SpecFile::parse_with_defaults(&dir.join("spec.toml"), spec, defaults)
            .expect("spec");
        let (_, spec) = file.select(None).expect("one image");
        let tag = crate::tag::compute(spec, &Default::default()).expect("tag");
        [tag.id, tag.tag, tag.image.to_string()]
    }

    #[test]
    fn only_base_image_and_registry_change_the_name_as_the_spec_field_would() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "pem").unwrap();
        let file = dir.path().join(PROJECT_FILE);
        let spec = "name = \"app\"\npackages = [\"numpy\"]\n";
        let plain = names(dir.path(), spec, Defaults::default());
        // (key, its [defaults] table, the same setting written in the spec, if hashed)
        let per_key = [
            (
                "base_image",
                "[defaults]\nbase_image = \"python:3.12-slim\"\n",
                Some("base_image = \"python:3.12-slim\"\n"),
            ),
            (
                "registry",
                "[defaults]\nregistry = \"LocalHost:5000\"\n",
                Some("registry = \"LocalHost:5000\"\n"),
            ),
            (
                "builder_config",
                "[defaults.builder_config]\nuv_image = \"m:5000/uv:1\"\n\
                 micromamba_image = \"m:5000/mm:1\"\n",
                None,
            ),
            ("ca_bundle", "[defaults]\nca_bundle = \"ca.pem\"\n", None),
            (
                "registry_mirrors",
                "[defaults.registry_mirrors]\n\"docker.io\" = \"m:5000\"\n",
                None,
            ),
            ("fast_path", "[defaults]\nfast_path = false\n", None),
            ("daemonless", "[defaults]\ndaemonless = false\n", None),
        ];
        let mut changing = Vec::new();
        for (key, table, written) in per_key {
            let values = DefaultValues::parse(&file, table).unwrap().unwrap();
            let defaults = |keep_name| Defaults {
                values: values.clone(),
                files: vec![file.clone()],
                keep_name,
            };
            let got = names(dir.path(), spec, defaults(false));
            if got != plain {
                changing.push(key);
            }
            match written {
                Some(field) => {
                    let as_written = format!("{spec}{field}");
                    let want = names(dir.path(), &as_written, Defaults::default());
                    assert_eq!(got, want, "{key}: as if written in the spec");
                    // The spec's own field wins over the default.
                    let other = format!("{spec}{}", field.replace("python:3.12", "python:3.9"));
                    let other = other.replace("LocalHost:5000", "ghcr.io/org");
                    assert_eq!(
                        names(dir.path(), &other, defaults(false)),
                        names(dir.path(), &other, Defaults::default()),
                        "{key}: the spec's field wins"
                    );
                    assert_eq!(
                        names(dir.path(), spec, defaults(true)),
                        plain,
                        "{key}: {KEEP_NAME_ENV} keeps the name"
                    );
                }
                None => assert_eq!(got, plain, "{key} must not change the name"),
            }
        }
        assert_eq!(changing, NAME_CHANGING);
    }

    #[test]
    fn discovery_stops_at_the_repository_root() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        let svc = repo.join("svc");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(&svc).unwrap();
        let defaults = "[defaults]\nfast_path = false\n";
        // Above the repository: never read.
        std::fs::write(root.path().join(PROJECT_FILE), defaults).unwrap();
        assert_eq!(project_defaults(&svc).unwrap(), None);
        // A spec named imagespec.toml without [defaults] is passed over.
        std::fs::write(svc.join(PROJECT_FILE), "name = \"svc\"\n").unwrap();
        std::fs::write(repo.join(PROJECT_FILE), defaults).unwrap();
        let (file, values) = project_defaults(&svc).unwrap().unwrap();
        assert_eq!(file, repo.join(PROJECT_FILE));
        assert_eq!(values.fast_path.map(|s| s.value), Some(false));
    }
}
