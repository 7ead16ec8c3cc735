//! Command-line arguments (kept apart from what the commands do).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Build container images from a declarative ImageSpec, named exactly as flytekit names them.
#[derive(Debug, Parser)]
#[command(name = "imagespec", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the id, tag, image name and normalised spec.
    Inspect(InspectArgs),
    /// Print the full image reference (`[registry/]name:tag`) alone, for `IMAGE=$(imagespec tag spec.toml)`.
    Tag(SpecArgs),
}

/// Which spec, and what only a running program would otherwise know.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The spec file (.toml, .yaml/.yml or .json).
    pub spec: PathBuf,
    /// In a file with an `[images]` table, the image to use.
    #[arg(short, long, value_name = "KEY")]
    pub image: Option<String>,
    /// For `source_copy_mode = loaded_modules`: a file listing the loaded module files, one
    /// path per line (as Python's `__file__`; relative lines are relative to this file).
    #[arg(long, value_name = "FILE")]
    pub modules_from: Option<PathBuf>,
    /// For `source_copy_mode = loaded_modules`: an entry module (dotted name or .py path under
    /// `source_root`) whose imports are followed statically. Repeatable.
    #[arg(long = "entry", value_name = "MODULE")]
    pub entries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// One JSON object (or, for several images, an object keyed by image) on stdout.
    #[arg(long)]
    pub json: bool,
}
