//! `imagespec plan`: the decision `build` would take for each image (bases first), with its
//! reason, and nothing done: no build, no push, no file written.

use super::gather::{Asked, Daemon, gather};
use super::{
    DecideOptions, Decision, Dependency, EngineError, Existence, Refusal, StrategyKind, decide,
};
use crate::oci::ImageRef;
use crate::plan::RenderOptions;
use crate::registry::client::RegistryClient;
use crate::spec::{NormalizedBase, NormalizedSpec};
use crate::tag::ImageTag;
use crate::timeouts::Timeouts;

/// The decision for one image.
#[derive(Debug)]
pub struct ImagePlan {
    pub image: ImageRef,
    pub id: String,
    pub tag: String,
    /// Where the existence check was asked.
    pub asked: Asked,
    /// Its answer (`None`: not asked).
    pub existence: Option<Existence>,
    /// The strategy and why, or why none applies.
    pub decision: Result<Decision, Refusal>,
    /// The dependency image's name, when the fast path may apply.
    pub dependency_image: Option<ImageRef>,
    pub dependency: Dependency,
    /// Who would make a missing dependency image (uv without a daemon, or dockerd and why).
    pub dependency_builder: Option<super::DependencyBuilder>,
    /// Files copied into the image.
    pub files: usize,
    /// The platforms built (the spec's `platform`, or `--platform`'s), in order: each is
    /// built on its own and an index joins several.
    pub platforms: Vec<String>,
    /// A build plan that could not be made (reported when a build is due).
    pub plan_error: Option<String>,
}

impl ImagePlan {
    /// One JSON object (the `imagespec plan --json` line).
    pub fn to_json(&self) -> serde_json::Value {
        let exists = match &self.existence {
            Some(Existence::Yes) => serde_json::Value::Bool(true),
            Some(Existence::No) => serde_json::Value::Bool(false),
            _ => serde_json::Value::Null,
        };
        let (strategy, reason, exit_code) = match &self.decision {
            Ok(d) => (serde_json::json!(d.strategy.as_str()), d.reason.clone(), 0),
            Err(r) => (serde_json::Value::Null, r.to_string(), r.exit_code()),
        };
        let dependency_exists = match &self.dependency {
            Dependency::Found(_) => serde_json::Value::Bool(true),
            Dependency::Missing => serde_json::Value::Bool(false),
            _ => serde_json::Value::Null,
        };
        let mut line = serde_json::json!({
            "image": self.image,
            "id": self.id,
            "tag": self.tag,
            "exists": exists,
            "asked": self.asked.to_string(),
            "exists_reason": match &self.existence {
                Some(Existence::Unknown(why)) => Some(why.as_str()),
                _ => None,
            },
            "strategy": strategy,
            "reason": reason,
            "dependency_image": self.dependency_image,
            "dependency_exists": dependency_exists,
            "dependency_builder": self.dependency_builder.as_ref().map(|b| b.name()),
            "dependency_builder_reason": self.dependency_builder.as_ref().and_then(|b| b.reason()),
            "files": self.files,
            "platforms": self.platforms,
            "plan_error": self.plan_error,
            "exit_code": exit_code,
        });
        // A reason may quote an install step (`pip_extra_args`, a tool's message).
        crate::redact::json_strings(&mut line);
        line
    }
}

/// The registry session of `spec` (its credentials looked up as `build` looks them up), or
/// `None` for a spec without a registry.
pub fn registry_session(
    spec: &NormalizedSpec,
    image: &ImageRef,
    timeouts: Timeouts,
) -> Result<Option<RegistryClient>, EngineError> {
    if spec.registry().is_none() {
        return Ok(None);
    }
    let host = image.host();
    let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
    Ok(Some(
        crate::registry::session(host, config.as_deref(), timeouts)
            .map_err(crate::builders::BackendError::from)?,
    ))
}

/// The plan of `spec` and, when `bases` is set, of its nested base specs first.
pub async fn plan(
    spec: &NormalizedSpec,
    tag: &ImageTag,
    render: &RenderOptions,
    options: &DecideOptions,
    bases: bool,
    timeouts: Timeouts,
) -> Result<Vec<ImagePlan>, EngineError> {
    let daemon = Daemon::new(timeouts);
    let mut out = Vec::new();
    let how = How {
        render,
        options: *options,
        bases,
        timeouts,
    };
    plan_into(spec, tag, &how, &daemon, &mut out).await?;
    Ok(out)
}

/// How every image of one `plan` is planned.
struct How<'a> {
    render: &'a RenderOptions,
    options: DecideOptions,
    bases: bool,
    timeouts: Timeouts,
}

fn plan_into<'a>(
    spec: &'a NormalizedSpec,
    tag: &'a ImageTag,
    how: &'a How<'a>,
    daemon: &'a Daemon,
    out: &'a mut Vec<ImagePlan>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), EngineError>> + 'a>> {
    Box::pin(async move {
        let (render, options) = (how.render, &how.options);
        if let (true, Some(NormalizedBase::Spec(inner)), Some(inner_tag)) =
            (how.bases, spec.base(), &tag.base)
        {
            // A base is never written to --output: it is pushed (flytekit's engine).
            let base_how = How {
                options: DecideOptions {
                    output: false,
                    ..*options
                },
                ..*how
            };
            plan_into(inner, inner_tag, &base_how, daemon, out).await?;
        }
        let client = registry_session(spec, &tag.image, how.timeouts)?;
        let quiet = crate::progress::Progress::new(false, true);
        let gathered = gather(spec, tag, render, options, client.as_ref(), daemon, &quiet).await;
        let decision = decide(&gathered.facts, options);
        let plan_error = match (&gathered.plan, &decision) {
            (Some(Err(e)), Ok(d)) if d.strategy.kind() != StrategyKind::Skip => Some(e.to_string()),
            _ => None,
        };
        // noop names the base image itself (flytekit's noop builder returns it).
        let image = match (&decision, spec.base()) {
            (Ok(d), Some(NormalizedBase::Ref(_))) if d.strategy.kind() == StrategyKind::Noop => {
                spec.base_ref()
                    .cloned()
                    .unwrap_or_else(|| tag.image.clone())
            }
            (Ok(d), Some(NormalizedBase::Spec(_))) if d.strategy.kind() == StrategyKind::Noop => {
                tag.base
                    .as_ref()
                    .map_or_else(|| tag.image.clone(), |b| b.image.clone())
            }
            _ => tag.image.clone(),
        };
        out.push(ImagePlan {
            image,
            id: tag.id.clone(),
            tag: tag.tag.clone(),
            asked: gathered.asked,
            existence: gathered.facts.existence.clone(),
            decision,
            dependency_image: gathered.dependency_image,
            dependency: gathered.facts.dependency.clone(),
            dependency_builder: gathered.facts.builder(),
            files: gathered.facts.files,
            platforms: gathered
                .facts
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect(),
            plan_error,
        });
        Ok(())
    })
}
