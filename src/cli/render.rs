//! `imagespec render SPEC -o DIR`: the build context on disk.

use super::args::{RenderArgs, RenderFlags};
use imagespec::Error;
use imagespec::engine::Builder;
use imagespec::plan::{BUILD_ENVD, BuildPlan, EnvdPlan, Flavor, RenderOptions};
use imagespec::render::Existing;

/// The render options the flags ask for.
/// The render options the flags ask for; a `--ca-bundle` that is not a readable file is bad
/// input, refused before any work.
pub fn options(flags: &RenderFlags) -> Result<RenderOptions, Error> {
    if let Some(bundle) = &flags.ca_bundle {
        let context = || format!("--ca-bundle {}", bundle.display());
        let meta = std::fs::metadata(bundle).map_err(|source| Error::Io {
            context: context(),
            source,
        })?;
        if !meta.is_file() {
            return Err(Error::Io {
                context: context(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a regular file (a PEM bundle of CA certificates is expected)",
                ),
            });
        }
    }
    let defaults = RenderOptions::default();
    Ok(RenderOptions {
        flavor: if flags.flytekit_compat {
            Flavor::FlytekitCompat
        } else {
            Flavor::Imagespec
        },
        ca_bundle: flags.ca_bundle.clone(),
        flytekit_requirement: flags
            .flytekit_requirement
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or(defaults.flytekit_requirement),
        host_python_version: flags
            .host_python_version
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or(defaults.host_python_version),
        platform: None,
    })
}

/// Renders the chosen image into `-o DIR`, or, for a file of several images without
/// `--image`, each image into `DIR/KEY` (as `build` builds every image).
pub fn run(args: &RenderArgs) -> Result<(), Error> {
    let file = super::load(&args.spec)?;
    let chosen = super::chosen(&file, args.spec.image.as_deref())?;
    let several = chosen.len() > 1;
    for (key, spec) in chosen {
        let out = if several {
            args.output.join(key)
        } else {
            args.output.clone()
        };
        render_one(args, spec, &out)?;
    }
    Ok(())
}

fn render_one(
    args: &RenderArgs,
    spec: &imagespec::NormalizedSpec,
    output: &std::path::Path,
) -> Result<(), Error> {
    let tag_options = super::tag_options(&args.spec, spec)?;
    let tag = imagespec::tag::compute(spec, &tag_options)?;
    let existing = if args.replace {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    // What --replace must never delete, besides the context's own source files.
    let mut inputs = vec![args.spec.spec.clone()];
    inputs.extend(spec.source_root.as_deref().map(|r| spec.resolve(r)));
    inputs.extend(spec.requirements.as_deref().map(|r| spec.resolve(r)));
    inputs.extend(args.spec.modules_from.clone());
    super::inspect::warn_excluded(spec, &tag);
    let builder = args.builder.as_deref().or(spec.builder.as_deref());
    let (written, files) = match builder.map(Builder::parse) {
        Some(Builder::Envd) => {
            let plan = EnvdPlan::new(spec, &tag, &options(&args.render)?)?;
            plan.render_into(output, existing, &inputs)?;
            (BUILD_ENVD, plan.files.len())
        }
        _ => {
            let plan = BuildPlan::new(spec, &tag, &options(&args.render)?)?;
            plan.render_into(output, existing, &inputs)?;
            for warning in imagespec::plan::index_credentials_warnings(spec, plan.flavor) {
                eprintln!("warning: {warning}");
            }
            for secret in &plan.index_secrets {
                // The URL itself is written nowhere: the user gives it at build time.
                eprintln!(
                    "note: {} {} is read from the BuildKit secret `{}`: build with \
                     `docker build --secret id={},src=FILE` (FILE holding the URL)",
                    secret.flag,
                    secret.redacted(),
                    secret.id,
                    secret.id
                );
            }
            ("Dockerfile", plan.files.len())
        }
    };
    imagespec::tag::verify_unchanged(spec, &tag_options, &tag)?;
    println!("{}", tag.image);
    eprintln!(
        "wrote {}/{written} and {files} context files",
        output.display()
    );
    Ok(())
}
