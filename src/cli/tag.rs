//! `imagespec tag SPEC`: the image reference alone on stdout.

use super::args::SpecArgs;
use imagespec::Error;

/// One line per image: the chosen one, or every image of a multi-image file in file order
/// (as `build` builds every image).
pub fn run(args: &SpecArgs) -> Result<(), Error> {
    let file = super::load(args)?;
    for (_, spec) in super::chosen(&file, args.image.as_deref())? {
        let tag = imagespec::tag::compute(spec, &super::tag_options(args, spec)?)?;
        println!("{}", tag.image);
    }
    Ok(())
}
