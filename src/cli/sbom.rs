//! `imagespec sbom IMAGE_OR_SPEC [--format spdx] [--platform P]`: the SBOM attached to the
//! image (the spec's, or the reference given), else computed from it.

use super::args::SbomArgs;
use imagespec::Error;
use std::io::Write;

/// Prints each platform's document on one line.
pub fn run(args: &SbomArgs) -> Result<(), Error> {
    let (image, registry_config) = target(args)?;
    let timeouts = args.timeouts.timeouts();
    let host = imagespec::registry::registry_host(&image);
    let client = imagespec::registry::session(host, registry_config.as_deref(), timeouts)
        .map_err(imagespec::builders::BackendError::from)?;
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let runtime = super::runtime()?;
    let shown = runtime.block_on(imagespec::sbom::show::show(
        &client,
        &image,
        args.platform.as_deref(),
        epoch.as_deref(),
        timeouts,
    ))?;
    let mut out = std::io::stdout().lock();
    for one in &shown {
        let platform = one.platform.as_deref().unwrap_or("its platform");
        if !one.attached {
            eprintln!("{image} ({platform}): no SBOM attached; computed from the image");
        }
        let written = out
            .write_all(&one.document)
            .and_then(|()| out.write_all(b"\n"));
        written.map_err(|source| Error::Io {
            context: "writing to stdout".into(),
            source,
        })?;
    }
    Ok(())
}

/// The image: the spec file's (with its registry config), or the reference given.
fn target(args: &SbomArgs) -> Result<(String, Option<std::path::PathBuf>), Error> {
    if !args.spec.spec.is_file() {
        return Ok((args.spec.spec.to_string_lossy().into_owned(), None));
    }
    let file = super::load(&args.spec)?;
    let (_, spec) = file.select(args.spec.image.as_deref())?;
    let tag = imagespec::tag::compute(spec, &super::tag_options(&args.spec, spec)?)?;
    let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
    Ok((tag.image, config))
}
