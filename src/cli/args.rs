//! Command-line arguments (kept apart from what the commands do).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `imagespec --version`: the crate's version and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("IMAGESPEC_COMMIT"),
    ")"
);

/// Build container images from a declarative ImageSpec, named exactly as flytekit names them.
///
/// Exit codes, for every command: 0 done (the image exists as named, or the answer is yes),
/// 1 failed (or the answer is no), 2 bad input (spec, files it names, command line),
/// 3 cannot tell whether the image exists (registry unreachable, stalled, credentials
/// refused).
#[derive(Debug, Parser)]
#[command(name = "imagespec", version = VERSION, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the id, tag, image name and normalised spec.
    Inspect(InspectArgs),
    /// Print the full image reference (`[registry/]name:tag`) alone, for `IMAGE=$(imagespec tag spec.toml)`.
    Tag(SpecArgs),
    /// Write the build context (Dockerfile and every file it needs) to a directory.
    Render(RenderArgs),
    /// Build the image (base specs first) with Docker's BuildKit and push it, unless it
    /// exists. Exit 0 when the image exists as named afterwards, 1 failed, 2 bad input,
    /// 3 cannot tell whether it exists (see --assume-exists).
    Build(BuildArgs),
    /// What `build` would do with each image and why, doing nothing.
    ///
    /// For each image (bases first): whether it exists (and where that was asked), the
    /// strategy (skip, assume, noop, append,
    /// build_dependencies_then_append, build, write_output) with its reason, the dependency
    /// image. Exit 0 when every image has a strategy, else the exit code `build` would give.
    Plan(PlanArgs),
    /// Why the spec's tag differs from an image built earlier.
    ///
    /// Compares the spec as it is now with the inputs recorded in IMAGE (the
    /// `org.imagespec.inputs` label every image imagespec builds carries), or, without
    /// `--against`, with the last image this machine built for the same name: the fields
    /// that changed (old → new, as flytekit's repr), the files added, removed, changed and
    /// renamed, and whether the dependency image changed.
    Explain(ExplainArgs),
    /// Print a shell completion script: `imagespec completions bash > /etc/bash_completion.d/imagespec`.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
    /// Does the image exist? Exit 0 yes, 1 no, 3 cannot tell (flytekit's `None`: registry
    /// unreachable, stalled, credentials refused), 2 bad input. Asks the registry directly
    /// (no daemon), or the local daemon for a spec without a registry.
    Exists(ExistsArgs),
    /// Is this process running in the image built from the spec (`_F_IMG_ID` equals the
    /// spec's id, as flytekit's `is_container()` checks)? Exit 0 yes, 1 no.
    IsContainer(SpecArgs),
    /// Remove dependency images no image uses any more (registry and dockerd) and stale
    /// entries of the local cache.
    ///
    /// `imagespec prune spec.toml --dry-run` lists, then `imagespec prune spec.toml` removes:
    ///
    /// - registry (the repositories of SPEC's images and nested base specs, and each
    ///   --repository): `deps-*` tags (dependency images of the fast path, with their
    ///   per-platform tags) that no image tag of the repository uses: its
    ///   `org.imagespec.inputs` label names the dependency image, or (an image without the
    ///   label: older builds, flytekit's builder) its layers start with the dependency
    ///   image's.
    ///   Deleting in a registry deletes a manifest by digest, with every tag naming it: a
    ///   manifest another kept tag names (also as an index entry) is never deleted. When an
    ///   image tag cannot be read, nothing is removed (exit 3). The registry must allow
    ///   deleting (distribution: `storage: delete: enabled: true`); the space comes back
    ///   with its garbage collection.
    ///
    /// - daemon: dockerd's `deps-*` tags no local image of their repository uses (all
    ///   repositories without SPEC/--repository), and builds' `-unlabelled-` working tags
    ///   tagged over a day ago. Never forced (an image a container uses stays). Skipped,
    ///   with a note, when no daemon answers.
    ///
    /// - cache: scratch files of ended runs, venvs staged over a day ago, broken known-layer
    ///   and source-digest records, source digests not written for 30 days, base trees not
    ///   used for 14 days. uv's cache only with --uv-cache; never locks or the last-build
    ///   records.
    ///
    /// Never touched: image tags (anything not `deps-<key>[-…]`), and any manifest or
    /// image a kept tag names. Exit 0 done, 1 a removal failed, 2 bad input, 3 cannot tell
    /// what is used (a registry unreachable or refusing, a tag unreadable).
    Prune(PruneArgs),
    /// Print the SBOM (SPDX 2.3 JSON) attached to an image: the one a spec file names
    /// (SPEC), or an image reference (`registry/name:tag`) in place of SPEC. When none is
    /// attached, it is computed from the image's layers, and stderr says so. One document
    /// per platform, one per line (`--platform` picks one). Exit 0, 1 failed, 2 no such
    /// image or bad input.
    Sbom(SbomArgs),
}

/// `imagespec sbom`'s arguments.
#[derive(Debug, Args)]
pub struct SbomArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub timeouts: TimeoutFlags,
    /// The document format.
    #[arg(long, value_enum, default_value = "spdx")]
    pub format: SbomFormat,
    /// Only this platform's document (`os/arch[/variant]`).
    #[arg(long, value_name = "PLATFORM", value_parser = imagespec::oci::Platform::parse)]
    pub platform: Option<imagespec::oci::Platform>,
    /// Print the SLSA provenance (an in-toto statement) instead of the SBOM.
    #[arg(long)]
    pub provenance: bool,
}

/// The formats `imagespec sbom` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
}

/// `imagespec prune`'s arguments.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// A spec file: prune the repositories of its images (and of their nested base specs).
    pub spec: Option<PathBuf>,
    /// In a file with an `[images]` table, only this image's repositories.
    #[arg(short, long, value_name = "KEY", requires = "spec")]
    pub image: Option<String>,
    /// A registry repository to prune, `REGISTRY/NAME` (no tag), besides or instead of
    /// SPEC's. Repeatable.
    #[arg(long = "repository", value_name = "REGISTRY/NAME", value_parser = repository_name)]
    pub repositories: Vec<imagespec::oci::reference::Repository>,
    /// List what would be removed (with sizes); remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the N most recently created unused dependency images of each repository (by
    /// their config's `created` or history; ties by name).
    #[arg(long, value_name = "N", default_value = "0")]
    pub keep: usize,
    /// Prune only the registry (combinable with --daemon and --cache; none of the three:
    /// all places).
    #[arg(long, alias = "registry-only")]
    pub registry: bool,
    /// Prune only dockerd's images (combinable).
    #[arg(long)]
    pub daemon: bool,
    /// Prune only the local cache (combinable).
    #[arg(long)]
    pub cache: bool,
    /// Also empty uv's cache in imagespec's cache dir (`uv cache clean`): daemonless
    /// builds then download every wheel again.
    #[arg(long)]
    pub uv_cache: bool,
    /// The docker config with the credentials for --repository registries (default:
    /// docker's; SPEC's repositories use the spec's `registry_config` when it has one).
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// One JSON object on stdout: `dry_run`, `items` [{place, group, what, kind, tags,
    /// digests, created, size, freed, remove, reason, kept, done, error}], `notes`,
    /// `exit_code`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub timeouts: TimeoutFlags,
}

/// Why `--repository`'s value is not a repository.
#[derive(Debug, thiserror::Error)]
enum RepositoryArgError {
    #[error("`{0}` names a tag or digest: give the repository alone (e.g. localhost:5000/app)")]
    TagOrDigest(String),
    #[error(transparent)]
    Reference(#[from] imagespec::oci::reference::ReferenceError),
}

/// `--repository`'s value: `[registry/]name` by the reference grammar, no tag or digest.
fn repository_name(
    value: &str,
) -> Result<imagespec::oci::reference::Repository, RepositoryArgError> {
    if value.contains('@') || has_tag(value) {
        return Err(RepositoryArgError::TagOrDigest(value.to_string()));
    }
    Ok(imagespec::oci::reference::Repository::new(None, value)?)
}

/// Whether `value` ends with `:tag` (a colon after the last `/`; a port's colon is before
/// it): said as such before the name is checked, whatever the tag holds.
fn has_tag(value: &str) -> bool {
    let last = value.rsplit('/').next().unwrap_or(value);
    last.contains(':')
}

/// `--against`'s value: an image reference by the grammar.
fn image_ref(
    value: &str,
) -> Result<imagespec::oci::ImageRef, imagespec::oci::reference::ReferenceError> {
    value.parse()
}

/// Which spec, and what only a running program would otherwise know.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The spec file (.toml, .yaml/.yml or .json).
    pub spec: PathBuf,
    /// In a file with an `[images]` table, the image to use. Without it, `tag`, `exists`,
    /// `render` (into DIR/KEY), `plan` and `build` act on every image in file order, so CI
    /// can name, check and build a whole file alike; `inspect` shows them all;
    /// `is-container` and `explain` need one.
    #[arg(short, long, value_name = "KEY")]
    pub image: Option<String>,
    /// For `source_copy_mode = loaded_modules`: a file listing the loaded module files, one
    /// path per line (as Python's `__file__`; relative lines are relative to this file).
    #[arg(long, value_name = "FILE")]
    pub modules_from: Option<PathBuf>,
    /// For `source_copy_mode = loaded_modules`: an entry module (dotted name or .py path under
    /// `source_root`) whose imports are followed statically. Repeatable.
    #[arg(long = "entry", value_name = "MODULE")]
    pub entries: Vec<String>,
    /// Resolve relative paths in the spec against DIR instead of the spec file's directory
    /// (for tools that write a spec to a temporary file, like the flytekit plugin).
    #[arg(long, value_name = "DIR")]
    pub relative_to: Option<PathBuf>,
    /// Read symbolic links in the source tree and `copy` entries through even when their
    /// target lies outside `source_root` or the entry (flytekit's behaviour). Off by default:
    /// a link could bake any host file into the image. Only for trees you trust.
    #[arg(
        long,
        env = "IMAGESPEC_ALLOW_EXTERNAL_LINKS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_external_links: bool,
    /// Read defaults from FILE (its `[defaults]` table) instead of the project's
    /// `imagespec.toml` and the user's `~/.config/imagespec/config.toml`.
    #[arg(long, value_name = "FILE", env = imagespec::spec::defaults::CONFIG_ENV)]
    pub config: Option<PathBuf>,
    /// Read no defaults file (also over `--config`): only the spec and the built-in
    /// defaults, for reproducible runs.
    #[arg(
        long,
        env = imagespec::spec::defaults::NO_CONFIG_ENV,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_config: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// One JSON object (or, for several images, an object keyed by image) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The directory to write the context to: created if missing, and it must be empty
    /// (`docker build DIR` would send whatever else is there).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Empty DIR first when it is not empty (e.g. an earlier render); refused when the
    /// spec's own files are inside it.
    #[arg(long)]
    pub replace: bool,
    /// Render for this builder instead of the spec's `builder`: `envd` writes `build.envd`
    /// and its context (flytekit's envd plugin), anything else a Dockerfile.
    #[arg(long, value_name = "BUILDER")]
    pub builder: Option<String>,
    #[command(flatten)]
    pub render: RenderFlags,
}

/// How the Dockerfile is rendered.
#[derive(Debug, Args)]
#[command(next_help_heading = "Rendering")]
pub struct RenderFlags {
    /// Render flytekit 1.16's Dockerfile byte for byte (needs Docker Hub and ghcr.io at build
    /// time: `#syntax=` line, uv and micromamba images).
    #[arg(long)]
    pub flytekit_compat: bool,
    /// A PEM bundle the build's network steps (apt, uv, micromamba, commands) trust, e.g. a
    /// TLS-intercepting proxy's CA: mounted as a BuildKit secret, never left in the image.
    #[arg(long, value_name = "FILE", env = "IMAGESPEC_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// The requirement added when `packages` do not name flytekit; default
    /// `flytekit==1.16.31`. The flytekit plugin passes the running flytekit's, as flytekit's
    /// builder adds its own version. Not part of the tag.
    #[arg(
        long,
        value_name = "REQUIREMENT",
        env = "IMAGESPEC_FLYTEKIT_REQUIREMENT"
    )]
    pub flytekit_requirement: Option<String>,
    /// The Python version flytekit would take from its own interpreter when the spec names
    /// none (micromamba's Python with `--flytekit-compat`, envd's default base); default 3.11.
    #[arg(long, value_name = "X.Y", env = "IMAGESPEC_HOST_PYTHON_VERSION")]
    pub host_python_version: Option<String>,
}

/// How long registry and daemon requests may take.
#[derive(Debug, Args)]
#[command(next_help_heading = "Timeouts")]
pub struct TimeoutFlags {
    /// Seconds to open a connection to a registry (TCP, TLS) or for dockerd to answer
    /// `/_ping` and the build's `/grpc`.
    #[arg(long, value_name = "SECONDS", env = imagespec::timeouts::CONNECT_TIMEOUT_ENV,
          default_value = "10", value_parser = imagespec::timeouts::parse_seconds)]
    pub connect_timeout: std::time::Duration,
    /// Seconds a registry or dockerd request may make no progress (no byte moved, no build
    /// status while dockerd does not answer `/_ping`) before it is given up; a transfer may
    /// take longer in total. Registry requests are then retried, 3 times.
    #[arg(long, value_name = "SECONDS", env = imagespec::timeouts::STALL_TIMEOUT_ENV,
          default_value = "60", value_parser = imagespec::timeouts::parse_seconds)]
    pub stall_timeout: std::time::Duration,
}

impl TimeoutFlags {
    /// The library's timeouts.
    pub fn timeouts(&self) -> imagespec::timeouts::Timeouts {
        imagespec::timeouts::Timeouts {
            connect: self.connect_timeout,
            stall: self.stall_timeout,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExistsArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub timeouts: TimeoutFlags,
}

/// The options that change what `build` decides (and `plan` shows), shared by both.
#[derive(Debug, Args)]
#[command(next_help_heading = "Decision (build and plan alike)")]
pub struct DecisionFlags {
    /// Keep the image in the daemon; do not push (also `FLYTE_PUSH_IMAGE_SPEC=false`).
    #[arg(long)]
    pub no_push: bool,
    /// Build and push even if the image exists (also `FLYTE_FORCE_PUSH_IMAGE_SPEC=true`).
    #[arg(long)]
    pub force: bool,
    /// Always run the whole Dockerfile; never append the source to the dependency image in
    /// the registry (also `IMAGESPEC_NO_FAST_PATH=true`).
    #[arg(long)]
    pub no_fast_path: bool,
    /// Build a missing dependency image with dockerd even when uv could make it without a
    /// daemon (also `IMAGESPEC_NO_DAEMONLESS=true`).
    #[arg(long)]
    pub no_daemonless: bool,
    /// When the registry (or daemon) cannot tell whether the image exists, assume it does and
    /// build nothing, as flytekit's engine does (also `FLYTE_IMG_FAST_FAIL=false`). Without
    /// it, "cannot tell" fails with exit 3. The flytekit plugin passes it unless
    /// `FLYTE_IMG_FAST_FAIL` is true.
    #[arg(long)]
    pub assume_exists: bool,
    /// Build these platforms (`os/arch[,os/arch…]`, e.g. `linux/amd64,linux/arm64`) instead
    /// of the spec's `platform`, under the same name: flytekit hashes `platform` into the
    /// tag, this does not change it. Also for nested base specs.
    #[arg(long, value_name = "LIST", value_parser = platform_list)]
    pub platform: Option<imagespec::oci::Platforms>,
    /// Nested base specs are built already (by the caller, e.g. flytekit's ImageBuildEngine):
    /// they name the image's base and enter its id and tag, but are neither looked up nor
    /// built, also not with `--force`.
    #[arg(long)]
    pub bases_built: bool,
    #[command(flatten)]
    pub remote: super::remote::RemoteFlags,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub render: RenderFlags,
    #[command(flatten)]
    pub timeouts: TimeoutFlags,
    #[command(flatten)]
    pub decision: DecisionFlags,
    /// Write the image to disk instead of pushing it: `oci:DIR` (OCI image layout),
    /// `oci-archive:FILE`, `docker-archive:FILE` (for `docker load`). Assembled on the
    /// dependency image without a daemon (a spec without `commands`, with source files).
    #[arg(long, value_name = "KIND:PATH", help_heading = "Output")]
    pub output: Option<imagespec::publish::layout::OutputTarget>,
    /// Machine-readable output: one JSON object per line on stdout, the last the result
    /// (with `digest`).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Attach an SBOM (SPDX 2.3) to every image published, as an OCI referrer (written into
    /// an `oci:DIR` output too). `--sbom=false` turns it off (also `IMAGESPEC_NO_SBOM=true`,
    /// or `sbom = false` in the defaults file).
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set, help_heading = "Output")]
    pub sbom: bool,
    /// Attach SLSA provenance v1 (an in-toto statement) beside the SBOM: how the image was
    /// built, from what. `--provenance=false` turns it off (also `IMAGESPEC_NO_PROVENANCE=true`,
    /// or `provenance = false` in the defaults file); without an SBOM there is none.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set, help_heading = "Output")]
    pub provenance: bool,
    /// Only errors on stderr.
    #[arg(short, long, help_heading = "Output")]
    pub quiet: bool,
    /// How progress is shown: `auto` (a live view on a terminal, plain lines otherwise and
    /// under CI), `tty`, `plain`, `json` (as `--json`) or `quiet` (as `--quiet`).
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        value_name = "MODE",
        help_heading = "Output"
    )]
    pub progress: ProgressMode,
    /// Colour in the live view: `auto` (off when NO_COLOR is set or stderr is no terminal),
    /// `always` or `never`.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        value_name = "WHEN",
        help_heading = "Output"
    )]
    pub color: ColorChoice,
    /// What stdout names: `tag` (`registry/name:tag`, default) or `digest`
    /// (`registry/name@sha256:…`, for signing and deploy steps; the tag when the image is in
    /// no registry).
    #[arg(
        long,
        value_enum,
        default_value = "tag",
        value_name = "KIND",
        help_heading = "Output"
    )]
    pub print_ref: PrintRef,
    /// Write buildx-compatible build metadata to FILE: `image.name`, `containerimage.digest`,
    /// plus `imagespec.id`, `imagespec.tag`, `imagespec.action`, `imagespec.strategy` (an
    /// object per image key when several images are built).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub metadata_file: Option<PathBuf>,
    /// Build up to N images of a multi-image file at once, each after the image it builds
    /// on (also `IMAGESPEC_JOBS`, or `jobs` in the defaults file; default 1: one after the
    /// other).
    #[arg(short = 'j', long, value_name = "N", help_heading = "Scheduling", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
}

/// How `build` names the image on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintRef {
    Tag,
    Digest,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub render: RenderFlags,
    #[command(flatten)]
    pub decision: DecisionFlags,
    /// Plan as `build --output KIND:PATH` would run (the image written to disk); the target
    /// may be left out, but `docker-archive:` (one platform per name) changes the plan.
    #[arg(long, value_name = "KIND:PATH", num_args = 0..=1)]
    pub output: Option<Option<imagespec::publish::layout::OutputTarget>>,
    #[command(flatten)]
    pub timeouts: TimeoutFlags,
    /// One JSON object per line per image, bases first, the requested image last.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The image to compare with (any registry; its platform image for the spec's first
    /// platform when it is an index).
    #[arg(long, value_name = "IMAGE", value_parser = image_ref)]
    pub against: Option<imagespec::oci::ImageRef>,
    #[command(flatten)]
    pub render: RenderFlags,
    #[command(flatten)]
    pub timeouts: TimeoutFlags,
    /// One JSON object: `fields` [{field, before, after}], `files` {added, removed,
    /// changed}, `renamed`, `dependencies_changed`.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// `--platform`'s value, each platform checked (`os/arch[/variant]`).
fn platform_list(
    value: &str,
) -> Result<imagespec::oci::Platforms, imagespec::oci::platform::PlatformError> {
    imagespec::oci::Platforms::parse(value)
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Tty,
    Plain,
    Json,
    Quiet,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}
