//! The `imagespec` commands: each parses nothing itself and calls the library.

pub mod args;
mod inspect;
mod render;
mod tag;

use imagespec::{Error, SpecFile, TagOptions};
use std::path::Path;

/// Runs a parsed command line.
pub fn run(cli: args::Cli) -> Result<(), Error> {
    match cli.command {
        args::Command::Inspect(a) => inspect::run(&a),
        args::Command::Tag(a) => tag::run(&a),
        args::Command::Render(a) => render::run(&a),
    }
}

/// The tag options from `--modules-from` / `--entry` for `spec`.
fn tag_options(args: &args::SpecArgs, spec: &imagespec::NormalizedSpec) -> Result<TagOptions, Error> {
    let mut modules: Option<Vec<String>> = None;
    if let Some(file) = &args.modules_from {
        let text = std::fs::read_to_string(file)
            .map_err(|source| Error::Io { context: format!("--modules-from {}", file.display()), source })?;
        let dir = std::path::absolute(file.parent().unwrap_or(Path::new("."))).unwrap_or_default();
        let list = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| if l.starts_with('/') { l.to_string() } else { dir.join(l).to_string_lossy().into_owned() });
        modules.get_or_insert_with(Vec::new).extend(list);
    }
    if !args.entries.is_empty() {
        let root = spec.source_root.as_deref().unwrap_or(".");
        let found = imagespec::source::imports::scan(&spec.resolve(root), &args.entries)
            .map_err(|source| Error::Io { context: "--entry".into(), source })?;
        modules.get_or_insert_with(Vec::new).extend(found);
    }
    Ok(TagOptions { modules })
}

fn load(args: &args::SpecArgs) -> Result<SpecFile, Error> {
    imagespec::load(&args.spec)
}
