//! [`EnvdPlan`]: what the envd builder needs, decided once — the `build.envd` of flytekit
//! 1.16's envd plugin (`flytekitplugins-envd`, `create_envd_config`) and the files next to it.
//!
//! `Flavor::FlytekitCompat` is the plugin's context byte for byte: the requirements file as
//! `requirements.txt`, the source files and `copy` entries at the context root (next to
//! `build.envd`), one `io.copy` per entry. The default flavor differs where the plugin's
//! output cannot build or builds something else than the spec says (docs/envd.md): `/root` gets exactly the files the tag hashed, from one `root/` directory
//! (`io.copy(source="root", target="/")`: envd copies a directory *into* its target, so the
//! plugin's `io.copy(source="data", target="/root/data/")` makes `/root/data/data`), env
//! values are strings (envd panics on an int), `entrypoint` is kept.
//!
//! ```no_run
//! # use imagespec::{plan::{EnvdPlan, RenderOptions}, tag};
//! let file = imagespec::load(std::path::Path::new("spec.toml"))?;
//! let (_, spec) = file.select(None)?;
//! let tag = tag::compute(spec, &Default::default())?;
//! let plan = EnvdPlan::new(spec, &tag, &RenderOptions::default())?;
//! plan.write(std::path::Path::new("envd-context"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::PlanError;
use super::copies::{check_inside, place_copies, place_source};
use super::image::{ContextFile, FLYTEKIT_REQUIREMENT, Flavor, RenderOptions};
use crate::oci::{ImageRef, Platforms};
use crate::spec::{CopyMode, NormalizedBase, NormalizedSpec, PyValue, Scalar};
use crate::tag::ImageTag;
use std::path::PathBuf;

/// The file envd reads (`envd build --path DIR` looks for `DIR/build.envd`).
pub const BUILD_ENVD: &str = "build.envd";
/// flytekit's `REQUIREMENTS_FILE_NAME`: the requirements file's name in the context.
pub const ENVD_REQUIREMENTS: &str = "requirements.txt";
/// The context directory whose content becomes `/root` (default flavor).
pub const ENVD_ROOT_DIR: &str = "root";
/// flytekit's `DefaultImages` prefix; the Python version and flytekit's version follow.
const DEFAULT_IMAGE_PREFIX: &str = "cr.flyte.org/flyteorg/flytekit:py";
/// flytekit's envd plugin replaces the base image by this (not an image envd can pull: envd's
/// CUDA support picks its own image) when `cuda` is set.
const CUDA_BASE_IMAGE: &str = "ubuntu20.04";

/// `install.conda_packages`.
#[derive(Debug, Clone, PartialEq)]
pub struct CondaInstall {
    pub packages: Vec<String>,
    pub channels: Vec<String>,
}

/// `install.cuda(version, cudnn)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CudaInstall {
    pub version: String,
    pub cudnn: String,
}

/// One `io.copy(source, target)`: `source` relative to the context.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvdCopy {
    pub source: String,
    pub target: String,
}

/// Everything the envd backend needs to build one image.
#[derive(Debug, Clone)]
pub struct EnvdPlan {
    /// Which `build.envd` `render` writes (imagespec's, or the plugin's own).
    pub flavor: Flavor,
    /// The image built: `[registry/]name:tag`.
    pub image: ImageRef,
    /// flytekit's image id (`_F_IMG_ID`, also in `env`).
    pub image_id: String,
    /// The platforms built.
    pub platform: Platforms,
    /// `base(image=...)`.
    pub base_image: String,
    /// `run(commands=[...])`: envd runs them after everything else, in one `bash -c`.
    pub commands: Vec<String>,
    /// `install.python_packages(name=[...])`.
    pub python_packages: Vec<String>,
    /// `install.apt_packages(name=[...])`.
    pub apt_packages: Vec<String>,
    /// `runtime.environ(env=...)`: `PYTHONPATH`, `_F_IMG_ID`, then the spec's, as Python values.
    pub env: Vec<(String, PyValue)>,
    /// `url` of `config.pip_index`.
    pub pip_index: String,
    /// `extra_url` of `config.pip_index`: the extra index URLs joined by spaces.
    pub pip_extra_index_url: Option<String>,
    /// `install.conda_packages(...)`, when the spec names conda packages.
    pub conda: Option<CondaInstall>,
    /// `install.python_packages(requirements="requirements.txt")`.
    pub requirements: bool,
    /// `install.python(version=...)`.
    pub python_version: Option<String>,
    /// `install.cuda(...)`.
    pub cuda: Option<CudaInstall>,
    /// `config.entrypoint` (default flavor only: the plugin drops it).
    pub entrypoint: Option<Vec<String>>,
    /// The `io.copy` calls that put the source and `copy` files under `/root`.
    pub copies: Vec<EnvdCopy>,
    /// Asked for, but envd has no secret mounts: nothing can bring it into a build step
    /// without leaving it in a layer, so the backend says it is not used.
    pub ca_bundle: Option<PathBuf>,
    /// The context files besides `build.envd` (written last), in the plugin's order.
    pub files: Vec<ContextFile>,
}

/// Python truthiness of a scalar, for the plugin's `if image_spec.cuda:` and the like.
fn truthy(value: &Scalar) -> bool {
    match value {
        Scalar::None => false,
        Scalar::Bool(b) => *b,
        Scalar::Int(i) => *i != 0,
        Scalar::Float(x) => *x != 0.0,
        Scalar::Str(s) => !s.is_empty(),
    }
}

/// The version part of flytekit's default image tag (`1.16.31` of `flytekit==1.16.31`).
fn flytekit_version(options: &RenderOptions) -> &str {
    match options.flytekit_requirement.split_once("==") {
        Some((_, version)) => version,
        None => FLYTEKIT_REQUIREMENT
            .rsplit("==")
            .next()
            .unwrap_or(FLYTEKIT_REQUIREMENT),
    }
}

impl EnvdPlan {
    /// Plans the envd build of `spec`, whose tag (and source set) is `tag`.
    pub fn new(
        spec: &NormalizedSpec,
        tag: &ImageTag,
        options: &RenderOptions,
    ) -> Result<EnvdPlan, PlanError> {
        let compat = options.flavor == Flavor::FlytekitCompat;
        // `if image_spec.python_exec is not None`: an empty string is refused too.
        if spec.python_exec.is_some() {
            return Err(PlanError::EnvdPythonExec {
                at: spec.at("python_exec"),
                name: spec.name().to_string(),
            });
        }
        let python_version = spec.python_version.as_ref().filter(|v| **v != Scalar::None);
        let cuda = cuda(spec, python_version.is_some())?;
        let base_image = base_image(spec, tag, options, cuda.is_some());
        // The plugin's order: requirements, source files, `copy` entries, build.envd last.
        let mut files = Vec::new();
        let requirements = requirements(spec, &mut files)?;
        let copies = root_files(spec, tag, compat, &mut files)?;
        Ok(EnvdPlan {
            flavor: options.flavor,
            image: tag.image.clone(),
            image_id: tag.id.clone(),
            platform: options.platforms(spec).clone(),
            base_image,
            commands: spec.commands.clone().unwrap_or_default(),
            python_packages: spec.packages.clone().unwrap_or_default(),
            apt_packages: spec.apt_packages.clone().unwrap_or_default(),
            env: env(spec, tag, compat),
            pip_index: spec
                .pip_index
                .clone()
                .unwrap_or_else(|| "https://pypi.org/simple".into()),
            pip_extra_index_url: spec.pip_extra_index_url.as_ref().map(|urls| urls.join(" ")),
            conda: spec
                .conda_packages
                .as_ref()
                .filter(|p| !p.is_empty())
                .map(|packages| CondaInstall {
                    packages: packages.clone(),
                    channels: spec.conda_channels.clone().unwrap_or_default(),
                }),
            requirements,
            python_version: python_version
                .filter(|v| truthy(v))
                .map(ToString::to_string),
            cuda,
            entrypoint: if compat {
                None
            } else {
                spec.entrypoint.clone().filter(|e| !e.is_empty())
            },
            copies,
            ca_bundle: (!compat).then(|| options.ca_bundle_for(spec)).flatten(),
            files,
        })
    }
}

/// `install.cuda(...)` when `cuda` is set (which needs `python_version`, as in the plugin).
fn cuda(spec: &NormalizedSpec, python_version: bool) -> Result<Option<CudaInstall>, PlanError> {
    match spec.cuda.as_ref().filter(|c| truthy(c)) {
        Some(_) if !python_version => Err(PlanError::EnvdCudaWithoutPythonVersion {
            at: spec.at("cuda"),
            name: spec.name().to_string(),
        }),
        Some(version) => Ok(Some(CudaInstall {
            version: version.to_string(),
            cudnn: spec
                .cudnn
                .as_ref()
                .filter(|c| truthy(c))
                .map(ToString::to_string)
                .unwrap_or_default(),
        })),
        None => Ok(None),
    }
}

/// The plugin's base image: its CUDA placeholder, the spec's `base_image`, the base spec's
/// image, or flytekit's default image for the host's Python and flytekit's version.
fn base_image(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    options: &RenderOptions,
    cuda: bool,
) -> String {
    match spec.base() {
        _ if cuda => CUDA_BASE_IMAGE.to_string(),
        Some(NormalizedBase::Ref(r)) => r.to_string(),
        Some(NormalizedBase::Empty) => String::new(),
        Some(NormalizedBase::Spec(_)) => tag
            .base
            .as_ref()
            .map(|b| b.image.to_string())
            .unwrap_or_default(),
        None => format!(
            "{DEFAULT_IMAGE_PREFIX}{}-{}",
            options.host_python_version,
            flytekit_version(options)
        ),
    }
}

/// `runtime.environ(env=...)`: `PYTHONPATH`, `_F_IMG_ID`, then the spec's `env` (a key
/// written again replaces the value in place).
fn env(spec: &NormalizedSpec, tag: &ImageTag, compat: bool) -> Vec<(String, PyValue)> {
    let mut env = vec![
        ("PYTHONPATH".to_string(), PyValue::Str("/root:".into())),
        ("_F_IMG_ID".to_string(), PyValue::Str(tag.id.clone())),
    ];
    for (k, v) in spec.env.iter().flatten() {
        // Deliberate difference: envd's runtime.environ panics on a non-string value
        // ("interface conversion: starlark.Value is starlark.Int"); Python's str() of it
        // is what the Dockerfile's ENV holds too.
        let v = if compat {
            PyValue::from(v)
        } else {
            PyValue::Str(v.to_string())
        };
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k.clone(), v)),
        }
    }
    env
}

/// The requirements file, copied into the context as `requirements.txt`: whether there is one.
fn requirements(spec: &NormalizedSpec, files: &mut Vec<ContextFile>) -> Result<bool, PlanError> {
    let Some(req) = spec.requirements.as_deref().filter(|r| !r.is_empty()) else {
        return Ok(false);
    };
    let path = spec.resolve(req);
    if !path.is_file() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "not a readable file");
        return Err(PlanError::Requirements {
            at: spec.at("requirements"),
            name: spec.name().to_string(),
            path,
            source,
        });
    }
    files.push(ContextFile::Copy {
        from: path,
        to: ENVD_REQUIREMENTS.into(),
    });
    Ok(true)
}

/// The source files and `copy` entries in the context, and the `io.copy`s that put them
/// under `/root`: the plugin's (at the context root, one per entry) with `compat`, else one
/// copy of the `root/` tree.
fn root_files(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    compat: bool,
    files: &mut Vec<ContextFile>,
) -> Result<Vec<EnvdCopy>, PlanError> {
    let copy_source = !matches!(spec.source_copy_mode, None | Some(CopyMode::NoCopy));
    let prefix = if compat {
        String::new()
    } else {
        format!("{ENVD_ROOT_DIR}/")
    };
    let mut root = Vec::new();
    let mut copies = Vec::new();
    if let Some(set) = tag.source.as_ref().filter(|_| copy_source) {
        place_source(set, &prefix, files, &mut root);
    }
    if copy_source && compat {
        copies.push(EnvdCopy {
            source: "./".into(),
            target: "/root".into(),
        });
    }
    let steps = place_copies(spec, tag, &prefix, compat, files, &mut root)?;
    if compat {
        copies.extend(steps.into_iter().map(|step| EnvdCopy {
            source: step.from,
            target: format!("/root/{}/", step.to),
        }));
    } else if copy_source || !steps.is_empty() {
        // One copy of the `root/` tree: its directory is copied *into* "/", i.e. onto
        // /root (whose owner and mode stay the base image's).
        files.insert(
            0,
            ContextFile::Dir {
                to: ENVD_ROOT_DIR.into(),
            },
        );
        copies.push(EnvdCopy {
            source: ENVD_ROOT_DIR.into(),
            target: "/".into(),
        });
    }
    // Also the source files themselves: `root/../x` stays in the context but not in /root.
    if let Some(set) = tag.source.as_ref().filter(|_| !copy_source) {
        place_source(set, &prefix, &mut Vec::new(), &mut root);
    }
    check_inside(spec, files, &root)?;
    Ok(copies)
}
