//! `imagespec exists SPEC` and `imagespec is-container SPEC`.

use super::args::{ExistsArgs, SpecArgs};
use imagespec::Error;
use imagespec::engine::Existence;

/// Prints `yes IMAGE`/`no IMAGE` for the chosen image, or for every image of a multi-image
/// file (as `build` builds every image): `Ok(true)` when all exist. "Cannot tell" for any is
/// exit 3 with the reason on stderr.
pub fn run(exists: &ExistsArgs) -> Result<bool, Error> {
    let args = &exists.spec;
    let file = super::load(args)?;
    let chosen = super::chosen(&file, args.image.as_deref())?;
    let runtime = super::runtime()?;
    let timeouts = exists.timeouts.timeouts();
    let mut all = true;
    for (_, spec) in chosen {
        let tag = imagespec::tag::compute(spec, &super::tag_options(args, spec)?)?;
        match runtime.block_on(imagespec::engine::run::exists(spec, &tag.image, timeouts))? {
            Existence::Yes => println!("yes {}", tag.image),
            Existence::No => {
                println!("no {}", tag.image);
                all = false;
            }
            Existence::Unknown(reason) => {
                return Err(Error::Unknown {
                    image: tag.image.to_string(),
                    reason,
                });
            }
        }
    }
    Ok(all)
}

/// Exit 0 inside the image built from the spec, 1 elsewhere.
pub fn is_container(args: &SpecArgs) -> Result<bool, Error> {
    let file = super::load(args)?;
    let (_, spec) = file.select(args.image.as_deref())?;
    let inside = imagespec::is_container(spec);
    println!("{}", if inside { "true" } else { "false" });
    Ok(inside)
}
