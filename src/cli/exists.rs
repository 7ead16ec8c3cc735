//! `imagespec exists SPEC` and `imagespec is-container SPEC`.

use super::args::{ExistsArgs, SpecArgs};
use imagespec::Error;
use imagespec::backend::docker::Existence;

/// Prints `yes`/`no`; "cannot tell" is exit 3 with the reason on stderr.
pub fn run(exists: &ExistsArgs) -> Result<bool, Error> {
    let args = &exists.spec;
    let file = super::load(args)?;
    let (_, spec) = file.select(args.image.as_deref())?;
    let tag = imagespec::tag::compute(spec, &super::tag_options(args, spec)?)?;
    let runtime = super::runtime()?;
    let timeouts = exists.timeouts.timeouts();
    match runtime.block_on(imagespec::build::exists(spec, &tag.image, timeouts))? {
        Existence::Yes => {
            println!("yes {}", tag.image);
            Ok(true)
        }
        Existence::No => {
            println!("no {}", tag.image);
            Ok(false)
        }
        Existence::Unknown(reason) => Err(Error::Unknown {
            image: tag.image,
            reason,
        }),
    }
}

/// Exit 0 inside the image built from the spec, 1 elsewhere.
pub fn is_container(args: &SpecArgs) -> Result<bool, Error> {
    let file = super::load(args)?;
    let (_, spec) = file.select(args.image.as_deref())?;
    let inside = imagespec::is_container(spec);
    println!("{}", if inside { "true" } else { "false" });
    Ok(inside)
}
