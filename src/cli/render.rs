//! `imagespec render SPEC -o DIR`: the build context on disk.

use super::args::{RenderArgs, RenderFlags};
use imagespec::context::{BuildPlan, Flavor, RenderOptions};
use imagespec::Error;

/// The render options the flags ask for.
pub fn options(flags: &RenderFlags) -> RenderOptions {
    RenderOptions {
        flavor: if flags.flytekit_compat { Flavor::FlytekitCompat } else { Flavor::Imagespec },
        ca_bundle: flags.ca_bundle.clone(),
        ..RenderOptions::default()
    }
}

pub fn run(args: &RenderArgs) -> Result<(), Error> {
    let file = super::load(&args.spec)?;
    let (_, spec) = file.select(args.spec.image.as_deref())?;
    let tag_options = super::tag_options(&args.spec, spec)?;
    let tag = imagespec::tag::compute(spec, &tag_options)?;
    let plan = BuildPlan::new(spec, &tag, &options(&args.render))?;
    plan.write(&args.output)?;
    imagespec::tag::verify_unchanged(spec, &tag_options, &tag)?;
    println!("{}", tag.image);
    eprintln!("wrote {}/Dockerfile and {} context files", args.output.display(), plan.files.len());
    Ok(())
}
