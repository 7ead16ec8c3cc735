//! The `imagespec` commands: each parses nothing itself and calls the library.

pub mod args;
mod build;
mod exists;
mod explain;
mod inspect;
mod plan;
mod prune;
mod remote;
mod render;
mod sbom;
mod tag;

use imagespec::{Error, SpecFile, TagOptions};
use std::path::Path;

/// Runs a parsed command line and gives its exit code; a "no" answer is exit 1, not an
/// error.
pub fn run(cli: args::Cli) -> Result<u8, Error> {
    let answer = |yes: bool| if yes { 0 } else { 1 };
    match cli.command {
        args::Command::Inspect(a) => inspect::run(&a).map(|()| 0),
        args::Command::Tag(a) => tag::run(&a).map(|()| 0),
        args::Command::Render(a) => render::run(&a).map(|()| 0),
        args::Command::Build(a) => build::run(&a).map(|()| 0),
        args::Command::Plan(a) => plan::run(&a).map(|code| code as u8),
        args::Command::Explain(a) => explain::run(&a).map(|()| 0),
        args::Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = args::Cli::command();
            // Into a buffer first: clap_complete panics on a closed stdout (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "imagespec", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            Ok(0)
        }
        args::Command::Exists(a) => exists::run(&a).map(answer),
        args::Command::IsContainer(a) => exists::is_container(&a).map(answer),
        args::Command::Prune(a) => prune::run(&a),
        args::Command::Sbom(a) => sbom::run(&a).map(|()| 0),
    }
}

/// The async runtime the network commands run on.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::System {
            context: "starting the async runtime".into(),
            source,
        })
}

/// The tag options from `--modules-from` / `--entry` for `spec`.
fn tag_options(
    args: &args::SpecArgs,
    spec: &imagespec::NormalizedSpec,
) -> Result<TagOptions, Error> {
    let mut modules: Option<Vec<String>> = None;
    if let Some(file) = &args.modules_from {
        let io = |source| Error::Io {
            context: format!("--modules-from {}", file.display()),
            source,
        };
        let text = std::fs::read_to_string(file).map_err(io)?;
        let parent = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(parent).map_err(io)?;
        // Lines are used as written (only blank lines are skipped): they stand for `__file__`
        // strings, which flytekit compares and sorts unnormalised.
        let list = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| imagespec::py::path::join(&dir.to_string_lossy(), l));
        modules.get_or_insert_with(Vec::new).extend(list);
    }
    if !args.entries.is_empty() {
        let root = spec.source_root.as_deref().unwrap_or(".");
        let found = imagespec::source::imports::scan(&spec.resolve(root), &args.entries).map_err(
            |source| Error::Io {
                context: "--entry".into(),
                source,
            },
        )?;
        modules.get_or_insert_with(Vec::new).extend(found);
    }
    let links = if args.allow_external_links {
        imagespec::source::LinkPolicy::AllowExternal
    } else {
        imagespec::source::LinkPolicy::StayInside
    };
    Ok(TagOptions { modules, links })
}

/// The images a command acts on: the one `--image` names, or every image of a multi-image
/// file in file order — `tag`, `exists`, `render`, `plan` and `build` alike.
fn chosen<'a>(
    file: &'a SpecFile,
    key: Option<&str>,
) -> Result<Vec<(&'a str, &'a imagespec::NormalizedSpec)>, Error> {
    Ok(match (key, file.is_multi()) {
        (None, true) => file.images()?,
        (key, _) => vec![file.select(key)?],
    })
}

/// Loads the spec file with its defaults: found from the spec's directory (or
/// `--relative-to`'s), or `--config`'s file, or none with `--no-config`.
fn load(args: &args::SpecArgs) -> Result<SpecFile, Error> {
    use imagespec::spec::defaults::{ConfigChoice, KEEP_NAME_ENV};
    let choice = ConfigChoice::new(args.config.clone(), args.no_config);
    // flytekit's str2bool, as for the other switches.
    let keep_name = std::env::var(KEEP_NAME_ENV)
        .is_ok_and(|v| !matches!(v.to_lowercase().as_str(), "" | "false" | "0" | "off" | "no"));
    match &args.relative_to {
        None => Ok(SpecFile::load_with(&args.spec, &choice, keep_name)?),
        Some(dir) => {
            let text = std::fs::read_to_string(&args.spec).map_err(|source| Error::Io {
                context: format!("reading {}", args.spec.display()),
                source,
            })?;
            let name = args.spec.file_name().unwrap_or(args.spec.as_os_str());
            Ok(SpecFile::parse_with(
                &dir.join(name),
                &text,
                &choice,
                keep_name,
            )?)
        }
    }
}
