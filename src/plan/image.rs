//! [`BuildPlan`]: everything a backend needs, decided once.

use super::PlanError;
use super::copies::{CopyStep, check_inside, place_copies, place_source};
use super::python::{check_secrets, python_plan};
use crate::oci::ImageRef;
use crate::oci::Platforms;
use crate::oci::reference::Tag;
use crate::source::SourceSet;
use crate::source::layer::RootEntry;
use crate::spec::defaults::{RegistryMirrors, Setting, choose};
use crate::spec::{CopyMode, NormalizedBase, NormalizedSpec, PyValue};
use crate::tag::ImageTag;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The flytekit requirement added when a spec's packages do not name flytekit: the version
/// imagespec matches (flytekit's builder pins its own version the same way).
pub const FLYTEKIT_REQUIREMENT: &str = "flytekit==1.16.31";
/// flytekit 1.16's `DEFAULT_UV_IMAGE`.
pub const DEFAULT_UV_IMAGE: &str = "ghcr.io/astral-sh/uv:0.5.1";
/// flytekit 1.16's `DEFAULT_MICROMAMBA_IMAGE`.
pub const DEFAULT_MICROMAMBA_IMAGE: &str = "mambaorg/micromamba:2.0.3-debian12-slim";
/// flytekit's default `base_image`.
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";

/// Which Dockerfile to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// imagespec's: builds without Docker Hub (no `#syntax=` line, micromamba only when
    /// conda or `python_version` needs it), ENV values quoted, optional CA bundle.
    #[default]
    Imagespec,
    /// flytekit 1.16's Dockerfile, byte for byte.
    FlytekitCompat,
}

/// Choices that are not part of the spec.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub flavor: Flavor,
    /// A PEM bundle trusted by the build's network steps (apt, uv, micromamba, commands),
    /// mounted as a BuildKit secret: never stored in the image.
    pub ca_bundle: Option<PathBuf>,
    /// The Python version flytekit takes from its own interpreter when the spec names none
    /// (micromamba's Python in `FlytekitCompat`, envd's default base image).
    pub host_python_version: String,
    /// The requirement added when the spec's packages do not name flytekit (flytekit adds
    /// the version that runs it: `flytekit==<version>`, plain `flytekit` for dev builds).
    /// Not part of the tag, as in flytekit.
    pub flytekit_requirement: String,
    /// `--platform`: the platforms built instead of the spec's `platform` (which flytekit
    /// hashes into the tag: the name stays the spec's).
    pub platform: Option<Platforms>,
}

impl RenderOptions {
    /// The CA bundle the build trusts: `--ca-bundle`'s (or `IMAGESPEC_CA_BUNDLE`'s), else
    /// the defaults file's `ca_bundle`.
    pub fn ca_bundle_for(&self, spec: &NormalizedSpec) -> Option<PathBuf> {
        let file = spec.defaults().values.ca_bundle.as_ref();
        self.ca_bundle
            .clone()
            .or_else(|| file.map(|s| s.value.clone()))
    }

    /// The platforms to build: `--platform`'s, else the spec's `platform`.
    pub fn platforms<'a>(&'a self, spec: &'a NormalizedSpec) -> &'a Platforms {
        self.platform.as_ref().unwrap_or_else(|| spec.platforms())
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            flavor: Flavor::Imagespec,
            ca_bundle: None,
            host_python_version: "3.11".into(),
            flytekit_requirement: FLYTEKIT_REQUIREMENT.into(),
            platform: None,
        }
    }
}

/// A conda environment made with micromamba.
#[derive(Debug, Clone, PartialEq)]
pub struct Micromamba {
    pub python_version: String,
    pub packages: Vec<String>,
    pub channels: Vec<String>,
}

/// How Python packages are installed.
#[derive(Debug, Clone, PartialEq)]
pub enum PythonInstall {
    /// `uv pip install` of `requirements_uv.txt` into the image's Python.
    Requirements { args: String },
    /// A venv at `/root/.venv` from the base's interpreter, then `uv pip install`.
    Venv { base_python: String, args: String },
    /// `uv sync` of `uv.lock` + `pyproject.toml` into the project venv `/root/.venv`;
    /// `base_python`: the base's interpreter uv sync makes it from (`None`: micromamba's,
    /// as `UV_PYTHON` names it).
    UvLock {
        base_python: Option<String>,
        args: String,
    },
    /// `poetry install` of `poetry.lock` + `pyproject.toml`.
    PoetryLock { args: String },
}

/// A `pip_secret_mounts` entry: a local file the install steps see at `target` (a
/// BuildKit secret `id` in the Dockerfile).
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub id: String,
    pub source: PathBuf,
    /// Where the install steps read it.
    pub target: String,
}

/// An index URL that holds credentials (`pip_index` or an entry of `pip_extra_index_url`
/// with `user:pass@`): imagespec's Dockerfile reads it from this BuildKit secret at build
/// time (`--index-url "$(cat /run/imagespec/pip-index-0)"`) instead of writing it on the
/// `RUN` line, where it would stay in the image's history and BuildKit's cache. flytekit's
/// own Dockerfile (`--flytekit-compat`) writes it on the line, and so has none.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSecret {
    /// The BuildKit secret id: `imagespec_pip_index_<n>`.
    pub id: String,
    /// Where the install step reads it: `/run/imagespec/pip-index-<n>`.
    pub target: String,
    /// `--index-url` or `--extra-index-url`.
    pub flag: &'static str,
    /// The URL as written, credentials and all.
    pub url: crate::redact::SecretString,
}

impl IndexSecret {
    /// The URL without its user information (`https://***@host/simple`).
    pub fn redacted(&self) -> String {
        crate::redact::url_credentials(self.url.expose()).into_owned()
    }
}

/// What to warn of when `spec` puts a URL's credentials on the install step's `RUN` line,
/// where they stay in the image's history: `pip_index`/`pip_extra_index_url` with
/// `--flytekit-compat` (flytekit's own Dockerfile; imagespec's passes them as BuildKit
/// secrets), `pip_extra_args` always (free-form shell words, written as they are).
pub fn index_credentials_warnings(spec: &NormalizedSpec, flavor: Flavor) -> Vec<String> {
    use crate::redact::has_url_credentials;
    let mut warnings = Vec::new();
    let fields: Vec<&str> = [
        (
            "pip_index",
            spec.pip_index.iter().any(|u| has_url_credentials(u)),
        ),
        (
            "pip_extra_index_url",
            spec.pip_extra_index_url
                .iter()
                .flatten()
                .any(|u| has_url_credentials(u)),
        ),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    if flavor == Flavor::FlytekitCompat && !fields.is_empty() {
        warnings.push(format!(
            "`{}` {} credentials: --flytekit-compat writes them on the install step's RUN \
             line, as flytekit does, and they stay in the image's history (without \
             --flytekit-compat they are passed as a BuildKit secret)",
            fields.join("` and `"),
            if fields.len() == 1 { "holds" } else { "hold" }
        ));
    }
    if spec
        .pip_extra_args
        .as_deref()
        .is_some_and(has_url_credentials)
    {
        warnings.push(
            "`pip_extra_args` holds a URL with credentials: it is written on the install \
             step's RUN line and stays in the image's history; name the index in `pip_index` \
             or `pip_extra_index_url`, whose credentials are passed as a BuildKit secret"
                .to_string(),
        );
    }
    warnings
}

/// A file of the build context.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextFile {
    /// Copied from `from` to `to` (relative to the context).
    Copy { from: PathBuf, to: String },
    /// Written with this content.
    Content { to: String, content: String },
    /// A directory, made even when nothing is put in it.
    Dir { to: String },
}

/// Everything a backend needs to build one image.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildPlan {
    /// Which Dockerfile `render` writes (imagespec's, or flytekit's own).
    pub flavor: Flavor,
    /// `[registry/]name:tag`: the tag's image, or the name a builder gave the plan it was
    /// handed (a platform's tag, a working tag).
    pub image: ImageRef,
    /// flytekit's image id: `_F_IMG_ID` in the image (empty in a dependency plan).
    pub image_id: String,
    /// The platforms built (`linux/amd64,linux/arm64`).
    pub platform: Platforms,
    /// The image the build starts from (`FROM`).
    pub base_image: ImageRef,
    /// The image uv is taken from (a build stage, never in the image).
    pub uv_image: ImageRef,
    /// The micromamba stage, when used (always in `FlytekitCompat`).
    pub micromamba_image: Option<ImageRef>,
    /// The conda environment micromamba makes, when the spec asks for one.
    pub micromamba: Option<Micromamba>,
    /// Debian packages installed first.
    pub apt_packages: Vec<String>,
    /// The directory put first on `PATH`: the installed Python's `bin`.
    pub extra_path: String,
    /// The Python the packages are installed for (`UV_PYTHON`).
    pub python_exec: String,
    /// The image's environment, in order: `PYTHONPATH`, then the spec's `env`.
    pub env: Vec<(String, String)>,
    /// How the Python packages are installed.
    pub install: PythonInstall,
    /// The image's entrypoint, as the spec writes it.
    pub entrypoint: Option<Vec<String>>,
    /// Source files go to `/root` (from `src/` in the context).
    pub source: Option<SourceSet>,
    /// The `copy` entries, one copy into `/root` each, in the spec's order.
    pub copies: Vec<CopyStep>,
    /// The spec's `commands`, run in one step (joined by `&&`).
    pub commands: Vec<String>,
    /// `pip_secret_mounts`: files the install steps see.
    pub secrets: Vec<Secret>,
    /// Index URLs with credentials, passed to imagespec's Dockerfile as BuildKit secrets
    /// (always empty with `--flytekit-compat`).
    pub index_secrets: Vec<IndexSecret>,
    /// A PEM bundle the network steps trust, mounted as a secret (never in the image).
    pub ca_bundle: Option<PathBuf>,
    /// The build context's files besides the Dockerfile, in flytekit's order.
    pub files: Vec<ContextFile>,
    /// What the source and `copy` COPY steps put under `/root`, in step order (a later entry
    /// at the same path replaces an earlier one): the registry fast path writes exactly this
    /// as a layer.
    pub root_entries: Vec<RootEntry>,
    /// `builder_options = { commands_before_copy = true }`: `commands` run before the source
    /// and `copy` files are copied (they do not use them), so they belong to the dependency
    /// image and a code-only change can be appended in the registry.
    pub commands_before_copy: bool,
    /// Labels set on the image besides the Dockerfile's (imagespec's record of the tag's
    /// inputs, which `explain` reads); not part of the dependency image.
    pub labels: Vec<(String, String)>,
    /// The spec's `registry_config`, resolved (else docker's own config is read): the
    /// credentials BuildKit gets for the images the Dockerfile pulls.
    pub registry_config: Option<PathBuf>,
    /// The defaults file's `registry_mirrors`: where the images the build reads (base, uv,
    /// micromamba) are pulled from. Never part of the Dockerfile the dependency key digests
    /// or `render` writes: only of what a builder is handed ([`BuildPlan::pulled`]).
    pub mirrors: RegistryMirrors,
    /// The dependency key, once `render` computed it (`BuildPlan::dependency_key`), kept
    /// with the fields it was computed from: a clone changed afterwards gets its own.
    key: DependencyKey,
}

/// `builder_options[key]` as a string (unset or `None`: `None`).
pub(super) fn option_str(
    spec: &NormalizedSpec,
    key: &'static str,
) -> Result<Option<String>, PlanError> {
    builder_option(spec, key, "a string", |v| match v {
        PyValue::Str(s) => Some(s.clone()),
        _ => None,
    })
}

/// `builder_options[key]` as a boolean (unset or `None`: `None`).
pub(super) fn option_bool(
    spec: &NormalizedSpec,
    key: &'static str,
) -> Result<Option<bool>, PlanError> {
    builder_option(spec, key, "true or false", |v| match v {
        PyValue::Bool(b) => Some(*b),
        _ => None,
    })
}

/// `builder_options[key]` read by `read`, which gives `None` for a value not `expected`.
fn builder_option<T>(
    spec: &NormalizedSpec,
    key: &'static str,
    expected: &'static str,
    read: impl Fn(&PyValue) -> Option<T>,
) -> Result<Option<T>, PlanError> {
    let value = spec
        .builder_options
        .iter()
        .flatten()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v);
    match value {
        None | Some(PyValue::None) => Ok(None),
        Some(v) => read(v).map(Some).ok_or_else(|| PlanError::BuilderOption {
            at: spec.at(&format!("builder_options.{key}")),
            name: spec.name().into(),
            key,
            expected,
        }),
    }
}

/// `builder_config.get(key)` as flytekit's `Template.substitute` writes it: Python's `str()`
/// (so `5` is `5` and `null` is `None`, not the default).
fn builder_config_str(spec: &NormalizedSpec, key: &str) -> Option<String> {
    spec.builder_config
        .as_ref()?
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| match v {
            PyValue::Str(s) => s.clone(),
            PyValue::None => "None".to_string(),
            PyValue::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            PyValue::Int(i) => i.to_string(),
            PyValue::Float(x) => crate::py::repr::float_repr(*x),
            other => crate::py::repr::repr(other),
        })
}

/// The image the plan builds on: the spec's `base_image`, the base spec's image (its tag
/// is in `tag`, computed with it), or flytekit's default.
fn base_image(spec: &NormalizedSpec, tag: &ImageTag) -> ImageRef {
    match (spec.base(), &tag.base) {
        (Some(NormalizedBase::Ref(image)), _) => image.clone(),
        (Some(NormalizedBase::Spec(_)), Some(base)) => base.image.clone(),
        _ => default_base_image(),
    }
}

/// [`DEFAULT_BASE_IMAGE`], parsed.
pub fn default_base_image() -> ImageRef {
    DEFAULT_BASE_IMAGE.parse().expect("a valid constant")
}

/// The image's environment: `PYTHONPATH=/root`, then the spec's `env` (as Python's `str()`
/// writes each value; a key written again replaces the value in place).
fn env(spec: &NormalizedSpec) -> Vec<(String, String)> {
    let mut env = vec![("PYTHONPATH".to_string(), "/root".to_string())];
    for (k, v) in spec.env.iter().flatten() {
        let v = v.to_string();
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k.clone(), v)),
        }
    }
    env
}

/// The uv or micromamba image (`key`): the spec's `builder_config[key]` (hashed by flytekit
/// as written, parsed here: a value that is no image reference is refused), else the
/// defaults file's `file` (used, never hashed: the name stays the spec's), else flytekit's
/// `built_in`.
fn builder_image(
    spec: &NormalizedSpec,
    key: &'static str,
    file: Option<&Setting<ImageRef>>,
    built_in: &str,
) -> Result<ImageRef, PlanError> {
    let written = builder_config_str(spec, key).map(|text| {
        text.parse::<ImageRef>()
            .map_err(|source| PlanError::BuilderImage {
                at: spec.at(&format!("builder_config.{key}")),
                name: spec.name().to_string(),
                key,
                source,
            })
    });
    let built_in = built_in.parse().expect("a valid constant");
    Ok(choose(None, written.transpose()?, file, built_in).0)
}

impl BuildPlan {
    /// Plans the build of `spec`, whose tag (and source set) is `tag`.
    pub fn new(
        spec: &NormalizedSpec,
        tag: &ImageTag,
        options: &RenderOptions,
    ) -> Result<BuildPlan, PlanError> {
        let compat = options.flavor == Flavor::FlytekitCompat;
        if spec.cuda.is_some() || spec.cudnn.is_some() {
            return Err(PlanError::Cuda {
                at: spec.origin.at_first_of(&["cuda", "cudnn"]),
                name: spec.name().to_string(),
            });
        }
        let mut files = Vec::new();
        let python = python_plan(spec, options, &mut files)?;
        let mut root_entries = Vec::new();
        let source = match spec.source_copy_mode {
            Some(mode) if mode != CopyMode::NoCopy => tag.source.clone(),
            _ => None,
        };
        if let Some(set) = &source {
            // flytekit makes src/ even when no file is selected: `COPY ./src` needs it.
            files.push(ContextFile::Dir { to: "src".into() });
            place_source(set, "src/", &mut files, &mut root_entries);
        }
        // Deliberate difference: flytekit copies entries to the context root, where one
        // named `src` or `requirements_uv.txt` collides with its own files; imagespec
        // keeps them under `copy/`.
        let prefix = if compat { "" } else { "copy/" };
        let copies = place_copies(spec, tag, prefix, compat, &mut files, &mut root_entries)?;
        check_secrets(spec, &python.secrets)?;
        check_inside(spec, &files, &root_entries)?;
        // imagespec's own option (flytekit hashes builder_options like any other, so names
        // stay flytekit's); flytekit's own Dockerfile keeps its order.
        let commands_before_copy =
            !compat && option_bool(spec, "commands_before_copy")?.unwrap_or(false);
        let defaults = &spec.defaults().values;
        let uv_image = builder_image(
            spec,
            "uv_image",
            defaults.uv_image.as_ref(),
            DEFAULT_UV_IMAGE,
        )?;
        let micromamba = python.micromamba;
        let micromamba_image = (compat || micromamba.is_some())
            .then(|| {
                let file = defaults.micromamba_image.as_ref();
                builder_image(spec, "micromamba_image", file, DEFAULT_MICROMAMBA_IMAGE)
            })
            .transpose()?;
        Ok(BuildPlan {
            flavor: options.flavor,
            image: tag.image.clone(),
            image_id: tag.id.clone(),
            platform: options.platforms(spec).clone(),
            base_image: base_image(spec, tag),
            uv_image,
            micromamba_image,
            micromamba,
            apt_packages: spec.apt_packages.clone().unwrap_or_default(),
            extra_path: python.extra_path.into(),
            python_exec: python.python_exec.into(),
            env: env(spec),
            install: python.install,
            entrypoint: spec.entrypoint.clone(),
            source,
            copies,
            commands: spec.commands.clone().unwrap_or_default(),
            secrets: python.secrets,
            index_secrets: python.index_secrets,
            ca_bundle: (!compat).then(|| options.ca_bundle_for(spec)).flatten(),
            files,
            root_entries,
            commands_before_copy,
            labels: Vec::new(),
            registry_config: spec.registry_config.as_deref().map(|p| spec.resolve(p)),
            mirrors: spec.defaults().values.registry_mirrors.clone(),
            key: DependencyKey::default(),
        })
    }

    /// Whether a commands step runs something: `commands` joined by `&&` is not empty
    /// (`[""]` runs nothing, as flytekit's `" && ".join(...)` writes nothing).
    pub fn runs_commands(&self) -> bool {
        self.commands.len() > 1 || self.commands.iter().any(|c| !c.is_empty())
    }

    /// Where `image` is read from: its registry's mirror ([`BuildPlan::mirrors`]), else
    /// itself.
    pub fn pull_ref(&self, image: &ImageRef) -> ImageRef {
        self.mirrors
            .pull_ref(image)
            .unwrap_or_else(|| image.clone())
    }

    /// The base image as pulled (from its mirror, when the defaults file names one).
    pub fn pulled_base(&self) -> ImageRef {
        self.pull_ref(&self.base_image)
    }

    /// This plan with the images it pulls (base, uv, micromamba) read from their mirrors:
    /// what a builder is handed. Its Dockerfile differs only in those `FROM`s.
    pub fn pulled(&self) -> std::borrow::Cow<'_, BuildPlan> {
        if self.mirrors.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut plan = self.clone();
        plan.base_image = self.pulled_base();
        plan.uv_image = self.pull_ref(&self.uv_image);
        plan.micromamba_image = self.micromamba_image.as_ref().map(|m| self.pull_ref(m));
        std::borrow::Cow::Owned(plan)
    }
}

/// The label on a dependency image that records what the fast path needs to know of its
/// file system without pulling the layers: `<flytekit uid> <uid> <gid> <octal mode of /root>`
/// (a COPY `--chown=flytekit` resolves the name in the image's /etc/passwd; the layer must
/// repeat /root's own attributes).
pub const DEPENDENCY_LABEL: &str = "org.imagespec.dependency-image";

impl BuildPlan {
    /// The plan of the dependency image without its name: everything but the source and
    /// `copy` files and `_F_IMG_ID` (which come last in the Dockerfile, so the image differs
    /// from the dependency image by exactly them). What the dependency key digests.
    pub fn without_source(&self) -> BuildPlan {
        let mut deps = self.clone();
        deps.source = None;
        deps.copies.clear();
        deps.root_entries.clear();
        deps.labels.clear();
        deps.image_id.clear();
        deps.files.retain(|f| {
            let to = f.to();
            !(to == "src" || to.starts_with("src/") || to == "copy" || to.starts_with("copy/"))
        });
        deps.key = DependencyKey::default();
        deps
    }

    /// What the dependency key digests: [`BuildPlan::without_source`] without its name (the
    /// Dockerfile never names the image it builds, and the dependency image is named by the
    /// key), so a plan and its dependency plan have the same inputs.
    pub fn key_inputs(&self) -> BuildPlan {
        let mut inputs = self.without_source();
        // The repository alone: a plan and its dependency plan share it.
        inputs.image = self.image.name().clone().into();
        inputs
    }

    /// The dependency key of this plan: the one kept when it was computed from these very
    /// [`BuildPlan::key_inputs`] (by this plan or the plan it was cloned from), else
    /// `compute(inputs)`, kept. `render` computes it (`BuildPlan::dependency_key`).
    pub(crate) fn dependency_key_with(&self, compute: impl FnOnce(&BuildPlan) -> String) -> String {
        self.key.get_or_compute(self.key_inputs(), compute)
    }

    /// The plan of the dependency image, whose key is `key` (what `render` computes for
    /// this plan: `BuildPlan::dependencies`): [`BuildPlan::without_source`] named
    /// `<repository>:deps-<key>`, carrying this plan's key (the inputs are the same).
    pub(crate) fn dependencies_keyed(&self, key: &str) -> BuildPlan {
        let mut deps = self.without_source();
        deps.image = self.image.name().with_tag(dependency_tag(key));
        deps.key = self.key.clone();
        deps
    }
}

/// `deps-<key>`: the dependency image's tag (a key is hex digits, so always a tag).
fn dependency_tag(key: &str) -> Tag {
    Tag::parse(&format!("deps-{key}")).expect("a dependency key is hex digits")
}

/// A plan's dependency key, kept once computed: `render` digests the rendered Dockerfile and
/// the context files (reading lock files) once per plan, and the plan's clones carry the
/// value. It is kept with the inputs it was computed from and used only for equal inputs,
/// so a clone whose platform (or anything else the key digests) was changed afterwards
/// cannot see its original's key: comparing two plans is cheap, rendering is not.
#[derive(Default)]
struct DependencyKey(Mutex<Option<Arc<KeyMemo>>>);

/// A computed key and the [`BuildPlan::key_inputs`] it was computed from.
struct KeyMemo {
    inputs: BuildPlan,
    key: String,
}

impl DependencyKey {
    /// The key of `inputs`: the one kept if it was computed from equal inputs, else
    /// `compute(&inputs)`, which is then kept.
    fn get_or_compute(
        &self,
        inputs: BuildPlan,
        compute: impl FnOnce(&BuildPlan) -> String,
    ) -> String {
        if let Some(memo) = self.memo().filter(|memo| memo.inputs == inputs) {
            return memo.key.clone();
        }
        let key = compute(&inputs);
        *self.lock() = Some(Arc::new(KeyMemo {
            inputs,
            key: key.clone(),
        }));
        key
    }

    /// The key kept, if one was computed (for whatever inputs).
    fn get(&self) -> Option<String> {
        self.memo().map(|memo| memo.key.clone())
    }

    fn memo(&self) -> Option<Arc<KeyMemo>> {
        self.lock().clone()
    }

    /// The memo, also after a thread panicked holding it (it is replaced whole, never
    /// left half-written).
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<KeyMemo>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for DependencyKey {
    fn clone(&self) -> Self {
        DependencyKey(Mutex::new(self.memo()))
    }
}

/// A cache, not part of the plan's value: two plans are equal whatever keys they kept.
impl PartialEq for DependencyKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for DependencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DependencyKey").field(&self.get()).finish()
    }
}

impl ContextFile {
    /// Where it goes in the context.
    pub fn to(&self) -> &str {
        match self {
            ContextFile::Copy { to, .. }
            | ContextFile::Content { to, .. }
            | ContextFile::Dir { to } => to,
        }
    }
}

/// The plan of `toml`, written as `spec.toml` into a new directory beside `files` (path,
/// text), under `options`: how the tests of later stages make a plan from a spec.
#[cfg(test)]
pub(crate) fn plan_in_dir(
    toml: &str,
    files: &[(&str, &str)],
    options: &RenderOptions,
) -> BuildPlan {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        std::fs::write(dir.path().join(path), text).unwrap();
    }
    std::fs::write(dir.path().join("spec.toml"), toml).unwrap();
    let file = crate::load(&dir.path().join("spec.toml")).unwrap();
    let (_, spec) = file.select(None).unwrap();
    let tag = crate::tag::compute(spec, &Default::default()).unwrap();
    BuildPlan::new(spec, &tag, options).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The plan of the only image of `spec` with the `[defaults]` of `table`.
    fn plan_with(spec: &str, table: &str) -> BuildPlan {
        try_plan_with(spec, table).unwrap()
    }

    fn try_plan_with(spec: &str, table: &str) -> Result<BuildPlan, PlanError> {
        use crate::spec::defaults::{DefaultValues, Defaults};
        let file = Path::new("/p/imagespec.toml");
        let values = DefaultValues::parse(file, table)
            .unwrap()
            .unwrap_or_default();
        let defaults = Defaults {
            values,
            files: vec![file.into()],
            keep_name: false,
        };
        let file = crate::SpecFile::parse_with_defaults(Path::new("/p/spec.toml"), spec, defaults)
            .unwrap();
        let (_, spec) = file.select(None).unwrap();
        let tag = crate::tag::compute(spec, &Default::default()).unwrap();
        BuildPlan::new(spec, &tag, &RenderOptions::default())
    }

    #[test]
    fn credentials_left_on_the_run_line_are_warned_of() {
        let warnings = |text: &str, flavor| {
            let file = crate::SpecFile::parse(Path::new("/p/spec.toml"), text).unwrap();
            let (_, spec) = file.select(None).unwrap();
            index_credentials_warnings(spec, flavor)
        };
        let index = "name = \"i\"\npip_index = \"https://u:p@h/s\"\n";
        assert!(warnings(index, Flavor::Imagespec).is_empty());
        let compat = warnings(index, Flavor::FlytekitCompat);
        assert_eq!(compat.len(), 1);
        assert!(
            compat[0].starts_with("`pip_index` holds credentials"),
            "{compat:?}"
        );
        assert!(!compat[0].contains("u:p"), "{compat:?}");
        let plain = "name = \"i\"\npip_index = \"https://h/s\"\n\
                     pip_extra_args = \"--pre\"\n";
        assert!(warnings(plain, Flavor::FlytekitCompat).is_empty());
        let args = "name = \"i\"\npip_extra_args = \"--extra-index-url https://t@h/s\"\n";
        let got = warnings(args, Flavor::Imagespec);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("`pip_extra_args` holds a URL"),
            "{got:?}"
        );
    }

    #[test]
    fn builder_images_come_from_the_spec_then_the_defaults_then_flytekit() {
        let table = "[defaults.builder_config]\nuv_image = \"m:5000/uv:9\"\n";
        let uv_image = |spec, table| plan_with(spec, table).uv_image.to_string();
        assert_eq!(uv_image("name = \"i\"\n", ""), DEFAULT_UV_IMAGE);
        assert_eq!(uv_image("name = \"i\"\n", table), "m:5000/uv:9");
        let spec = "name = \"i\"\nbuilder_config = { uv_image = \"s/uv:1\" }\n";
        assert_eq!(uv_image(spec, table), "s/uv:1");
    }

    #[test]
    fn a_builder_image_that_is_no_reference_is_refused_where_it_is_written() {
        let spec = "name = \"i\"\nbuilder_config = { uv_image = true }\n";
        let err = try_plan_with(spec, "").unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::BuilderImage {
                    key: "uv_image",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("/p/spec.toml:2:") && message.contains("`builder_config.uv_image`"),
            "{message}"
        );
        assert!(
            message.contains("\"True\""),
            "flytekit's str() of it: {message}"
        );
        // Not used, so not read: micromamba only with conda or `python_version`.
        let unused = "name = \"i\"\nbuilder_config = { micromamba_image = \"Bad Name\" }\n";
        assert!(
            try_plan_with(unused, "")
                .unwrap()
                .micromamba_image
                .is_none()
        );
    }

    #[test]
    fn the_key_is_computed_once_per_inputs_and_clones_carry_it() {
        let plan = plan_with("name = \"i\"\npackages = [\"six\"]\n", "");
        let calls = std::cell::Cell::new(0);
        let key_of = |plan: &BuildPlan| {
            plan.dependency_key_with(|inputs| {
                calls.set(calls.get() + 1);
                format!("{} {}", inputs.platform, inputs.apt_packages.len())
            })
        };
        assert_eq!(key_of(&plan), "linux/amd64 0");
        assert_eq!(key_of(&plan), "linux/amd64 0");
        assert_eq!(key_of(&plan.clone()), "linux/amd64 0");
        // The dependency plan and a plan with other labels digest the same.
        assert_eq!(key_of(&plan.dependencies_keyed("k")), "linux/amd64 0");
        let mut labelled = plan.clone();
        labelled.labels.push(("a".into(), "b".into()));
        assert_eq!(key_of(&labelled), "linux/amd64 0");
        assert_eq!(calls.get(), 1);
        // A clone changed afterwards computes its own, once.
        let mut arm = plan.clone();
        arm.platform = crate::oci::Platforms::parse("linux/arm64").unwrap();
        assert_eq!(key_of(&arm), "linux/arm64 0");
        assert_eq!(key_of(&arm), "linux/arm64 0");
        arm.apt_packages.push("git".into());
        assert_eq!(key_of(&arm), "linux/arm64 1");
        assert_eq!(calls.get(), 3);
        assert_eq!(key_of(&plan), "linux/amd64 0");
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn mirrors_change_what_is_pulled_not_the_dockerfile_the_key_digests() {
        let spec = "name = \"i\"\nbase_image = \"mirror-me.invalid/py:3\"\n";
        let table = "[defaults.registry_mirrors]\n\"mirror-me.invalid\" = \"localhost:5000\"\n\
                     \"ghcr.io\" = \"localhost:5000/ghcr\"\n";
        let plain = plan_with(spec, "");
        let mirrored = plan_with(spec, table);
        assert_eq!(plain.dependencies().image, mirrored.dependencies().image);
        assert_eq!(
            crate::render::dockerfile(&plain),
            crate::render::dockerfile(&mirrored)
        );
        let pulled = mirrored.pulled();
        assert_eq!(pulled.base_image.to_string(), "localhost:5000/py:3");
        assert_eq!(
            pulled.uv_image.to_string(),
            "localhost:5000/ghcr/astral-sh/uv:0.5.1"
        );
        let dockerfile = crate::render::dockerfile(&pulled);
        assert!(
            dockerfile.contains("FROM localhost:5000/py:3"),
            "{dockerfile}"
        );
        assert!(!dockerfile.contains("mirror-me.invalid"), "{dockerfile}");
    }
}
