//! `imagespec build SPEC`: build (and push) unless the image exists.

use super::args::{BuildArgs, PrintRef};
use imagespec::Error;
use imagespec::engine::run::{Action, BuildOptions, BuildOutcome};
use imagespec::progress::{Mode, Progress};
use serde_json::json;

pub fn run(args: &BuildArgs) -> Result<(), Error> {
    // Scratch files (layers, --output staging) are removed when the build is interrupted.
    imagespec::scratch::install_signal_handler();
    let progress = progress_for(args);
    let result = run_with(args, &progress);
    if let Err(e) = &result {
        progress
            .json(json!({"event": "error", "message": e.to_string(), "exit_code": e.exit_code()}));
    }
    result
}

/// The printer `--progress`, `--json`, `--quiet` and `--color` ask for.
fn progress_for(args: &BuildArgs) -> Progress {
    use super::args::{ColorChoice, ProgressMode};
    use imagespec::progress::Mode;
    let colour = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
        }
    };
    console::set_colors_enabled_stderr(colour);
    // indicatif's template styles ask console's stdout switch: progress is drawn on stderr,
    // and stdout carries no colour, so the one choice sets both.
    console::set_colors_enabled(colour);
    match args.progress {
        _ if args.json => Progress::with_mode(Mode::Json),
        _ if args.quiet => Progress::with_mode(Mode::Quiet),
        ProgressMode::Auto => Progress::new(false, false),
        ProgressMode::Tty => Progress::with_mode(Mode::Tty),
        ProgressMode::Plain => Progress::with_mode(Mode::Plain),
        ProgressMode::Json => Progress::with_mode(Mode::Json),
        ProgressMode::Quiet => Progress::with_mode(Mode::Quiet),
    }
}

fn run_with(args: &BuildArgs, progress: &Progress) -> Result<(), Error> {
    let file = super::load(&args.spec)?;
    let chosen = super::chosen(&file, args.spec.image.as_deref())?;
    let runtime = super::runtime()?;
    let mut metadata = serde_json::Map::new();
    let several = chosen.len() > 1;
    let mut summary = Vec::new();
    for (key, spec) in chosen {
        let mut render = super::render::options(&args.render)?;
        render.platform = args.decision.platform.clone();
        for warning in imagespec::plan::index_credentials_warnings(spec, render.flavor) {
            progress.event(imagespec::progress::Event::Warning(&warning));
        }
        let mut options = BuildOptions::from_env_with(
            render,
            super::tag_options(&args.spec, spec)?,
            spec.defaults(),
        );
        options.push &= !args.decision.no_push;
        options.force |= args.decision.force;
        options.fast_path &= !args.decision.no_fast_path;
        options.daemonless &= !args.decision.no_daemonless;
        options.sbom &= args.sbom;
        options.output = args.output.clone();
        options.build_bases = !args.decision.bases_built;
        options.assume_exists |= args.decision.assume_exists;
        options.timeouts = args.timeouts.timeouts();
        options.remote = args.decision.remote.options(spec.defaults())?;
        let outcome = runtime.block_on(imagespec::engine::run::build(spec, &options, progress));
        // The live view's header stays, saying how this image's build ended, above what
        // follows (the image's name, the next image's view, an error).
        progress.finish(outcome.is_ok());
        let outcome = outcome?;
        report(&outcome, args.print_ref, progress);
        metadata.insert(key.to_string(), metadata_of(&outcome));
        summary.push((key.to_string(), outcome));
    }
    if several && matches!(progress.mode(), Mode::Plain | Mode::Tty) {
        progress.suspend(|| eprintln!("{}", summary_lines(&summary)));
    }
    if let Some(path) = &args.metadata_file {
        // One image: its keys at the top, as buildx writes them; several: one object per
        // image key, as `buildx bake` does per target.
        let value = match (several, metadata.values().next()) {
            (false, Some(only)) => only.clone(),
            _ => serde_json::Value::Object(metadata),
        };
        write_metadata(path, &value)?;
    }
    // Work left in the background (a staging venv being deleted) is not waited for: the
    // next run sweeps what remains.
    runtime.shutdown_background();
    Ok(())
}

/// One line per image of a multi-image build: its key, what happened, how long it took and
/// its digest (a failed image ends the build before this, with its error).
fn summary_lines(done: &[(String, BuildOutcome)]) -> String {
    let width = done.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::from("summary:");
    for (key, o) in done {
        let action = serde_json::to_value(o.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n  {key:<width$}  {action:<8}  {:>6.1}s  {}",
            o.seconds,
            o.digest.clone().unwrap_or_else(|| o.image.to_string())
        ));
    }
    out
}

/// buildx's metadata keys for one image, plus imagespec's own.
fn metadata_of(outcome: &BuildOutcome) -> serde_json::Value {
    json!({
        "image.name": outcome.image,
        "containerimage.digest": outcome.digest,
        "imagespec.id": outcome.id,
        "imagespec.tag": outcome.tag,
        "imagespec.action": outcome.action,
        "imagespec.strategy": outcome.strategy,
    })
}

fn write_metadata(path: &std::path::Path, value: &serde_json::Value) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).expect("metadata serialises");
    std::fs::write(path, text + "\n").map_err(|source| Error::Io {
        context: format!("writing --metadata-file {}", path.display()),
        source,
    })
}

fn report(outcome: &BuildOutcome, print_ref: PrintRef, progress: &Progress) {
    progress.json(json!({"event": "result", "image": outcome.image, "digest": outcome.digest, "id": outcome.id, "tag": outcome.tag, "action": outcome.action, "strategy": outcome.strategy, "reason": outcome.reason, "pushed": outcome.pushed, "seconds": outcome.seconds, "base": outcome.base}));
    if progress.mode() == imagespec::progress::Mode::Json {
        return;
    }
    progress.suspend(|| match (print_ref, &outcome.digest) {
        (PrintRef::Digest, Some(digest)) => {
            println!("{}@{digest}", outcome.image.name());
        }
        _ => println!("{}", outcome.image),
    });
    let what = match (outcome.action, outcome.pushed) {
        (Action::Built, true) => "built and pushed",
        (Action::Built, false) => "built",
        (Action::Appended, _) => "assembled in the registry",
        (Action::Written, _) => "written",
        // Already said, in one line, by the build itself.
        _ => return,
    };
    if progress.mode() != imagespec::progress::Mode::Quiet {
        let digest = outcome
            .digest
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        progress.suspend(|| {
            eprintln!(
                "{}{digest} {what} in {:.1}s",
                outcome.image, outcome.seconds
            )
        });
    }
}
