//! `imagespec sbom IMAGE_OR_SPEC [--format spdx|cyclonedx] [--provenance] [--platform P]`:
//! the SBOM (or provenance) attached to the image (the spec's, or the reference given),
//! else computed from it.

use super::args::{SbomArgs, SbomFormat};
use imagespec::Error;
use imagespec::sbom::show::Shown;
use std::io::Write;

/// Prints each platform's document on one line.
pub fn run(args: &SbomArgs) -> Result<(), Error> {
    let (image, registry_config) = target(args)?;
    let timeouts = args.timeouts.timeouts();
    let client = imagespec::registry::session(image.host(), registry_config.as_deref(), timeouts)
        .map_err(imagespec::builders::BackendError::from)?;
    // A bad value is ignored here, as before: `sbom` writes nothing.
    let epoch = imagespec::oci::epoch::SourceDateEpoch::from_env()
        .ok()
        .flatten();
    let runtime = super::runtime()?;
    let what = match (args.provenance, args.format) {
        (true, _) => Shown::Provenance,
        (false, SbomFormat::Spdx) => Shown::Spdx,
        (false, SbomFormat::Cyclonedx) => Shown::CycloneDx,
    };
    let shown = runtime.block_on(imagespec::sbom::show::show(
        &client,
        &image,
        args.platform.as_ref(),
        what,
        epoch,
        timeouts,
    ))?;
    let mut out = std::io::stdout().lock();
    for one in &shown {
        let platform = one.platform.as_ref().map_or("its platform", |p| p.as_str());
        if !one.attached && what != Shown::CycloneDx {
            let kind = if args.provenance {
                "provenance"
            } else {
                "SBOM"
            };
            eprintln!("{image} ({platform}): no {kind} attached; computed from the image");
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
fn target(
    args: &SbomArgs,
) -> Result<(imagespec::oci::ImageRef, Option<std::path::PathBuf>), Error> {
    if !args.spec.spec.is_file() {
        let image = args.spec.spec.to_string_lossy().parse();
        let image = image.map_err(imagespec::sbom::image::SbomError::Reference)?;
        return Ok((image, None));
    }
    let file = super::load(&args.spec)?;
    let (_, spec) = file.select(args.spec.image.as_deref())?;
    let tag = imagespec::tag::compute(spec, &super::tag_options(&args.spec, spec)?)?;
    let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
    Ok((tag.image, config))
}
