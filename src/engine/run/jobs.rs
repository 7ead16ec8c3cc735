//! `--jobs N`: the images of a multi-image file built at once, at most N, each after the
//! image its base spec names ([`crate::engine::schedule`] decides which; this runs them).
//! Each image runs [`super::build`] on a thread of its own (a scoped thread, at most N
//! alive), its events in a block of their own ([`Progress::for_image`]). A failure starts
//! nothing new; the images running end, and each image's end is told as it comes. With
//! several remote builders (`--builder-host` twice), the images share one count of their
//! builds, so that each BuildKit build goes to the least busy builder.

use super::{BuildOptions, BuildOutcome, build};
use crate::engine::EngineError;
use crate::engine::schedule::{Graph, Schedule, Skip, State};
use crate::progress::Progress;
use crate::spec::NormalizedSpec;
use std::sync::mpsc;

/// The stack of each build's thread: the main thread's 8 MiB.
const BUILD_THREAD_STACK: usize = 8 << 20;

/// One image of the file, with the options it is built with.
pub struct Image<'a> {
    pub key: &'a str,
    pub spec: &'a NormalizedSpec,
    pub options: BuildOptions,
}

/// How one image of the build ended.
#[derive(Debug)]
pub enum Ended {
    Built(Box<BuildOutcome>),
    Failed(EngineError),
    /// Not built, and why (its base failed; another image failed first).
    Skipped(String),
}

/// One image's end, as [`build_all`] tells it.
#[derive(Debug)]
pub struct Report<'a> {
    /// The file's key; `None` for a nested base spec built for the images on it.
    pub key: Option<&'a str>,
    /// The key, or the nested base's `name`.
    pub name: &'a str,
    pub ended: Ended,
}

/// Builds `images` (and their nested bases), `jobs` at once, on `runtime`; `told` hears
/// each image's end on this thread, as it comes (the skipped ones last).
pub fn build_all<'a>(
    images: &'a [Image<'a>],
    jobs: usize,
    runtime: &tokio::runtime::Handle,
    progress: &Progress,
    mut told: impl FnMut(Report<'a>),
) {
    let Some(first) = images.first() else {
        return;
    };
    let specs: Vec<(&str, &NormalizedSpec)> = images.iter().map(|i| (i.key, i.spec)).collect();
    let bases = first.options.build_bases;
    let graph = Graph::of(&specs, bases);
    let mut options = node_options(&graph, images, &first.options);
    // One count of the builds on each remote builder for the whole run: each BuildKit
    // build takes the least busy builder.
    let load = crate::builders::remote::host::Load::default();
    for remote in options.iter_mut().filter_map(|o| o.remote.as_mut()) {
        remote.load = load.clone();
    }
    let name = |n: usize| graph.nodes[n].key.unwrap_or(graph.nodes[n].spec.name());
    let mut schedule = Schedule::new(graph.bases(), jobs);
    let (sender, results) = mpsc::channel();
    std::thread::scope(|scope| {
        while !schedule.over() {
            for node in schedule.start() {
                let (sender, spec, options) =
                    (sender.clone(), graph.nodes[node].spec, &options[node]);
                let failed = sender.clone();
                let progress = progress.for_image(name(node));
                // The build's future is boxed and its thread gets the main thread's stack:
                // a debug build's future is deep enough to overflow a spawned thread's
                // default 2 MiB (seen with the SBOM attached beside the push).
                let job = move || {
                    let outcome = runtime.block_on(Box::pin(build(spec, options, &progress)));
                    progress.finish(outcome.is_ok());
                    // The receiver lives until every thread has sent.
                    let _ = sender.send((node, outcome));
                };
                let thread = std::thread::Builder::new()
                    .name(format!("build {}", name(node)))
                    .stack_size(BUILD_THREAD_STACK);
                if let Err(source) = thread.spawn_scoped(scope, job) {
                    let context = format!("starting the build of {}", name(node));
                    let _ = failed.send((node, Err(EngineError::Io { context, source })));
                }
            }
            let Ok((node, outcome)) = results.recv() else {
                break;
            };
            schedule.finished(node, outcome.is_ok());
            let ended = match outcome {
                Ok(outcome) => Ended::Built(Box::new(outcome)),
                Err(e) => Ended::Failed(e),
            };
            told(Report {
                key: graph.nodes[node].key,
                name: name(node),
                ended,
            });
        }
    });
    for node in 0..graph.nodes.len() {
        let why = match schedule.state(node) {
            State::Skipped(Skip::BaseFailed(base)) => {
                format!("not built: the image it builds on, {}, failed", name(base))
            }
            State::Skipped(Skip::Stopped) => "not started: another image failed".to_string(),
            _ => continue,
        };
        told(Report {
            key: graph.nodes[node].key,
            name: name(node),
            ended: Ended::Skipped(why),
        });
    }
}

/// Each node's options: a file image's own; a nested base's those of an image built on it,
/// never written to `--output` (flytekit's engine pushes a base); `first`'s for a node none
/// builds on (there is none: a nested base is a node because an image builds on it).
fn node_options(
    graph: &Graph<'_>,
    images: &[Image<'_>],
    first: &BuildOptions,
) -> Vec<BuildOptions> {
    let of_key = |key: Option<&str>| images.iter().find(|i| Some(i.key) == key);
    let mut options: Vec<Option<BuildOptions>> = graph
        .nodes
        .iter()
        .map(|n| of_key(n.key).map(|i| i.options.clone()))
        .collect();
    // Images come after their bases: walking down from the top, each base takes the
    // options of an image built on it.
    for n in (0..graph.nodes.len()).rev() {
        if let (Some(base), Some(mine)) = (graph.nodes[n].base, options[n].clone())
            && options[base].is_none()
        {
            let mut theirs = mine;
            theirs.output = None;
            options[base] = Some(theirs);
        }
    }
    options
        .into_iter()
        .map(|o| o.unwrap_or_else(|| first.clone()))
        .collect()
}
