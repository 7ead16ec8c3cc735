//! `imagespec render SPEC -o DIR`: the build context on disk.

use super::args::{RenderArgs, RenderFlags};
use imagespec::Error;
use imagespec::context::{BUILD_ENVD, BuildPlan, EnvdPlan, Flavor, RenderOptions};
use imagespec::engine::Builder;

/// The render options the flags ask for.
pub fn options(flags: &RenderFlags) -> RenderOptions {
    let defaults = RenderOptions::default();
    RenderOptions {
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
    }
}

pub fn run(args: &RenderArgs) -> Result<(), Error> {
    let file = super::load(&args.spec)?;
    let (_, spec) = file.select(args.spec.image.as_deref())?;
    let tag_options = super::tag_options(&args.spec, spec)?;
    let tag = imagespec::tag::compute(spec, &tag_options)?;
    let builder = args.builder.as_deref().or(spec.builder.as_deref());
    let (written, files) = match builder.map(Builder::parse) {
        Some(Builder::Envd) => {
            let plan = EnvdPlan::new(spec, &tag, &options(&args.render))?;
            plan.write(&args.output)?;
            (BUILD_ENVD, plan.files.len())
        }
        _ => {
            let plan = BuildPlan::new(spec, &tag, &options(&args.render))?;
            plan.write(&args.output)?;
            ("Dockerfile", plan.files.len())
        }
    };
    imagespec::tag::verify_unchanged(spec, &tag_options, &tag)?;
    println!("{}", tag.image);
    eprintln!(
        "wrote {}/{written} and {files} context files",
        args.output.display()
    );
    Ok(())
}
