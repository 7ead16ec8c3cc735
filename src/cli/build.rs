//! `imagespec build SPEC`: build (and push) unless the image exists.

use super::args::BuildArgs;
use imagespec::build::{Action, BuildOptions, BuildOutcome};
use imagespec::progress::Progress;
use imagespec::{Error, NormalizedSpec};
use serde_json::json;

pub fn run(args: &BuildArgs) -> Result<(), Error> {
    // Scratch files (layers, --output staging) are removed when the build is interrupted.
    imagespec::scratch::install_signal_handler();
    let progress = Progress::new(args.json, args.quiet);
    let result = run_with(args, &progress);
    if let Err(e) = &result {
        progress
            .json(json!({"event": "error", "message": e.to_string(), "exit_code": e.exit_code()}));
    }
    result
}

fn run_with(args: &BuildArgs, progress: &Progress) -> Result<(), Error> {
    let file = super::load(&args.spec)?;
    let chosen: Vec<(&str, &NormalizedSpec)> = match (&args.spec.image, file.is_multi()) {
        (None, true) => file.images()?,
        (key, _) => vec![file.select(key.as_deref())?],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    for (_, spec) in chosen {
        let mut render = super::render::options(&args.render);
        render.platform = args.platform.clone();
        let mut options = BuildOptions::from_env(render, super::tag_options(&args.spec, spec)?);
        options.push &= !args.no_push;
        options.force |= args.force;
        options.fast_path &= !args.no_fast_path;
        options.output = args.output.clone();
        options.build_bases = !args.bases_built;
        options.assume_exists |= args.assume_exists;
        let outcome = runtime.block_on(imagespec::build::build(spec, &options, progress))?;
        report(&outcome, progress);
    }
    Ok(())
}

fn report(outcome: &BuildOutcome, progress: &Progress) {
    progress.json(json!({"event": "result", "image": outcome.image, "id": outcome.id, "tag": outcome.tag, "action": outcome.action, "strategy": outcome.strategy, "reason": outcome.reason, "pushed": outcome.pushed, "seconds": outcome.seconds, "base": outcome.base}));
    if progress.mode() == imagespec::progress::Mode::Json {
        return;
    }
    println!("{}", outcome.image);
    let what = match (outcome.action, outcome.pushed) {
        (Action::Built, true) => "built and pushed",
        (Action::Built, false) => "built",
        (Action::Appended, _) => "assembled in the registry",
        (Action::Written, _) => "written",
        // Already said, in one line, by the build itself.
        _ => return,
    };
    if progress.mode() != imagespec::progress::Mode::Quiet {
        eprintln!("{} {what} in {:.1}s", outcome.image, outcome.seconds);
    }
}
