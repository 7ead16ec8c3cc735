//! `imagespec build SPEC`: build (and push) unless the image exists.

use super::args::{BuildArgs, PrintRef};
use imagespec::Error;
use imagespec::engine::run::{Action, BuildOptions, BuildOutcome, jobs};
use imagespec::progress::{Mode, Progress};
use serde_json::json;

pub fn run(args: &BuildArgs) -> Result<(), Error> {
    // A bad SOURCE_DATE_EPOCH is bad input, refused before anything is asked or built.
    imagespec::oci::epoch::SourceDateEpoch::from_env()?;
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
    let several = chosen.len() > 1;
    let jobs = chosen.first().map_or(Ok(1), |(_, spec)| jobs(args, spec))?;
    let summary = if several && jobs > 1 {
        let images = chosen
            .iter()
            .map(|(key, spec)| {
                let options = options_for(args, spec, progress)?;
                Ok(jobs::Image { key, spec, options })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        parallel(&images, jobs, runtime.handle(), args, progress)?
    } else {
        let mut summary = Vec::new();
        for (key, spec) in chosen {
            let options = options_for(args, spec, progress)?;
            let outcome = runtime.block_on(imagespec::engine::run::build(spec, &options, progress));
            // The live view's header stays, saying how this image's build ended, above what
            // follows (the image's name, the next image's view, an error).
            progress.finish(outcome.is_ok());
            let outcome = outcome?;
            report(&outcome, args.print_ref, progress);
            summary.push((key.to_string(), outcome));
        }
        summary
    };
    if several && matches!(progress.mode(), Mode::Plain | Mode::Tty) {
        progress.suspend(|| eprintln!("{}", summary_lines(&summary)));
    }
    if let Some(path) = &args.metadata_file {
        // One image: its keys at the top, as buildx writes them; several: one object per
        // image key, as `buildx bake` does per target.
        let metadata: serde_json::Map<_, _> = summary
            .iter()
            .map(|(key, outcome)| (key.clone(), metadata_of(outcome)))
            .collect();
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

/// How many images build at once: `--jobs`, else `IMAGESPEC_JOBS`, else the defaults
/// file's `jobs` (of `spec`'s files, which every image of the file shares), else 1.
fn jobs(args: &BuildArgs, spec: &imagespec::NormalizedSpec) -> Result<usize, Error> {
    if let Some(n) = args.jobs {
        return Ok(n as usize);
    }
    if let Some(value) = std::env::var(JOBS_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return match value.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n as usize),
            _ => Err(Error::Io {
                context: format!("{JOBS_ENV}={value:?}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "expected a whole number from 1",
                ),
            }),
        };
    }
    Ok(spec
        .defaults()
        .values
        .jobs
        .as_ref()
        .map_or(1, |s| s.value as usize))
}

/// The variable `--jobs` reads when not given.
const JOBS_ENV: &str = "IMAGESPEC_JOBS";

/// The options `spec` is built with, from the flags, the environment and its defaults
/// (and the warnings about its indexes said).
fn options_for(
    args: &BuildArgs,
    spec: &imagespec::NormalizedSpec,
    progress: &Progress,
) -> Result<BuildOptions, Error> {
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
    options.provenance &= args.provenance;
    options.output = args.output.clone();
    options.build_bases = !args.decision.bases_built;
    options.assume_exists |= args.decision.assume_exists;
    options.timeouts = args.timeouts.timeouts();
    options.remote = args.decision.remote.options(spec.defaults())?;
    Ok(options)
}

/// `--jobs N` over a multi-image file: each image's end told as it comes, the summary in
/// the file's order; a failure's error returned once everything running has ended (the
/// worst exit code of all, the other failures said before it).
fn parallel(
    images: &[jobs::Image<'_>],
    n: usize,
    runtime: &tokio::runtime::Handle,
    args: &BuildArgs,
    progress: &Progress,
) -> Result<Vec<(String, BuildOutcome)>, Error> {
    let mut built = Vec::new();
    let mut failed: Vec<(String, Error)> = Vec::new();
    let mut skipped = Vec::new();
    jobs::build_all(images, n, runtime, progress, |told| match told.ended {
        jobs::Ended::Built(outcome) => {
            if let Some(key) = told.key {
                report(&outcome, args.print_ref, progress);
                built.push((key.to_string(), *outcome));
            }
        }
        jobs::Ended::Failed(e) => failed.push((told.name.to_string(), e.into())),
        jobs::Ended::Skipped(why) => {
            progress.json(json!({"event": "skipped", "key": told.name, "reason": why}));
            skipped.push((told.name.to_string(), why));
        }
    });
    let order = |key: &str| images.iter().position(|i| i.key == key);
    built.sort_by_key(|(key, _)| order(key));
    let worst = failed.iter().map(|(_, e)| e.exit_code()).max();
    let Some(worst) = failed
        .iter()
        .position(|(_, e)| Some(e.exit_code()) == worst)
    else {
        return Ok(built);
    };
    let (_, error) = failed.remove(worst);
    if matches!(progress.mode(), Mode::Plain | Mode::Tty) && !built.is_empty() {
        progress.suspend(|| eprintln!("{}", summary_lines(&built)));
    }
    for (other, e) in &failed {
        progress.json(json!({"event": "error", "key": other, "message": e.to_string(), "exit_code": e.exit_code()}));
        if progress.mode() != Mode::Json {
            progress.suspend(|| eprintln!("error: {other}: {e}"));
        }
    }
    for (key, why) in &skipped {
        if matches!(progress.mode(), Mode::Plain | Mode::Tty) {
            progress.suspend(|| eprintln!("{key}: {why}"));
        }
    }
    Err(error)
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
        // What ran: a fresh dependency image too, not only the fast path's append.
        (Action::Appended, _)
            if outcome.strategy == imagespec::engine::StrategyKind::BuildDependenciesThenAppend =>
        {
            "dependency image built and pushed, the source assembled in the registry"
        }
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
