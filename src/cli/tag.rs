//! `imagespec tag SPEC`: the image reference alone on stdout.

use super::args::SpecArgs;
use imagespec::Error;

pub fn run(args: &SpecArgs) -> Result<(), Error> {
    let file = super::load(args)?;
    let (_, spec) = file.select(args.image.as_deref())?;
    let tag = imagespec::tag::compute(spec, &super::tag_options(args, spec)?)?;
    println!("{}", tag.image);
    Ok(())
}
