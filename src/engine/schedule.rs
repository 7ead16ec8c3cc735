//! `--jobs N`: which images of a build may run now. flytekit's `ImageBuildEngine.build`
//! builds a spec's nested base specs first, one image at a time; here the images of a
//! multi-image file and their nested bases are a graph (an image waits for the image its
//! `base_image` spec names), and independent images run at once, at most N.
//!
//! Pure: [`Graph::of`] finds the images and their bases (a `{ spec = KEY }` base is the
//! file's image KEY, built once); [`Schedule`] says which to start as others
//! end. A failure stops the schedule: nothing new starts, the images running end, the
//! images built on the failed one are skipped naming it, the others are skipped as not
//! started. The executor is `engine::run::jobs`.

use crate::spec::{NormalizedBase, NormalizedSpec};

/// One image of the graph: a file's image (`key`) or a nested base spec none names.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    pub spec: &'a NormalizedSpec,
    /// The file's key of the image; `None` for a nested base only built for others.
    pub key: Option<&'a str>,
    /// The node of the spec's nested base, built before it.
    pub base: Option<usize>,
}

/// The images of one build, each base before the images built on it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph<'a> {
    pub nodes: Vec<Node<'a>>,
}

impl<'a> Graph<'a> {
    /// The graph of `images` (the file's keys and specs, in order). With `bases` false
    /// (`--bases-built`), nested bases are not built: no node waits for another.
    pub fn of(images: &[(&'a str, &'a NormalizedSpec)], bases: bool) -> Graph<'a> {
        let mut graph = Graph::default();
        for (key, spec) in images {
            let node = graph.add(spec, bases);
            // The first key wins when two keys name equal specs: one build, both reported.
            graph.nodes[node].key.get_or_insert(key);
        }
        graph
    }

    /// The node of `spec` (its bases added first), found when an equal spec is there.
    fn add(&mut self, spec: &'a NormalizedSpec, bases: bool) -> usize {
        if let Some(found) = self.nodes.iter().position(|n| n.spec == spec) {
            return found;
        }
        let base = match spec.base() {
            Some(NormalizedBase::Spec(inner)) if bases => Some(self.add(inner, bases)),
            _ => None,
        };
        self.nodes.push(Node {
            spec,
            key: None,
            base,
        });
        self.nodes.len() - 1
    }

    /// Each node's base node, as [`Schedule::new`] takes them.
    pub fn bases(&self) -> Vec<Option<usize>> {
        self.nodes.iter().map(|n| n.base).collect()
    }
}

/// Why an image was not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The image it builds on (this node, directly or further down) failed.
    BaseFailed(usize),
    /// Another image failed before this one started.
    Stopped,
}

/// Where an image is in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped(Skip),
}

/// Which images run: at most `limit` at once, each after its base is done.
#[derive(Debug, Clone)]
pub struct Schedule {
    bases: Vec<Option<usize>>,
    states: Vec<State>,
    limit: usize,
    stopped: bool,
}

impl Schedule {
    /// A schedule of images whose bases are `bases` (indexes into the same list, each
    /// earlier than the image: [`Graph::of`]'s order), `limit` at once (at least 1).
    pub fn new(bases: Vec<Option<usize>>, limit: usize) -> Schedule {
        Schedule {
            states: vec![State::Waiting; bases.len()],
            bases,
            limit: limit.max(1),
            stopped: false,
        }
    }

    /// The images to start now, in order, each marked running: none once stopped.
    pub fn start(&mut self) -> Vec<usize> {
        if self.stopped {
            return Vec::new();
        }
        let running = self.count(State::Running);
        let mut started = Vec::new();
        for node in 0..self.states.len() {
            if running + started.len() >= self.limit {
                break;
            }
            let ready = self.bases[node].is_none_or(|b| self.states[b] == State::Done);
            if self.states[node] == State::Waiting && ready {
                self.states[node] = State::Running;
                started.push(node);
            }
        }
        started
    }

    /// `node` ended. A failure stops the schedule: the images built on it are skipped
    /// naming it; the other waiting ones are skipped once nothing runs ([`Self::over`]).
    pub fn finished(&mut self, node: usize, ok: bool) {
        if !ok {
            self.stopped = true;
        }
        self.states[node] = if ok { State::Done } else { State::Failed };
        if ok {
            return;
        }
        // Bases come first: one pass in order reaches every image further up.
        for n in node + 1..self.states.len() {
            let on_failed = self.bases[n].is_some_and(|b| {
                b == node || self.states[b] == State::Skipped(Skip::BaseFailed(node))
            });
            if on_failed && self.states[n] == State::Waiting {
                self.states[n] = State::Skipped(Skip::BaseFailed(node));
            }
        }
    }

    /// Whether the schedule is over (nothing runs, nothing can start); the images still
    /// waiting then are skipped as not started.
    pub fn over(&mut self) -> bool {
        if self.count(State::Running) > 0 {
            return false;
        }
        let waiting = self.count(State::Waiting);
        if waiting > 0 && !self.stopped {
            return false;
        }
        for state in &mut self.states {
            if *state == State::Waiting {
                *state = State::Skipped(Skip::Stopped);
            }
        }
        true
    }

    /// Where `node` is.
    pub fn state(&self, node: usize) -> State {
        self.states[node]
    }

    fn count(&self, state: State) -> usize {
        self.states.iter().filter(|s| **s == state).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SpecFile;
    use std::path::Path;

    /// Runs `schedule` to its end, the images in `fail` failing, each round ending the
    /// images started first; returns the rounds of images started.
    fn run(schedule: &mut Schedule, fail: &[usize]) -> Vec<Vec<usize>> {
        let mut rounds = Vec::new();
        let mut running = std::collections::VecDeque::new();
        for _ in 0..100 {
            let started = schedule.start();
            if !started.is_empty() {
                rounds.push(started.clone());
            }
            running.extend(started);
            if let Some(node) = running.pop_front() {
                schedule.finished(node, !fail.contains(&node));
            }
            if schedule.over() {
                return rounds;
            }
        }
        panic!("the schedule never ended")
    }

    #[test]
    fn independent_images_start_together_up_to_the_limit() {
        let mut schedule = Schedule::new(vec![None; 5], 2);
        assert_eq!(
            run(&mut schedule, &[]),
            [vec![0, 1], vec![2], vec![3], vec![4]]
        );
        let mut one = Schedule::new(vec![None; 3], 1);
        assert_eq!(run(&mut one, &[]), [vec![0], vec![1], vec![2]]);
        // A limit of 0 is one at a time.
        assert_eq!(Schedule::new(vec![None; 2], 0).start(), [0]);
    }

    #[test]
    fn an_image_waits_for_its_base() {
        // 0 <- 1 <- 2, 3 alone, 4 on 0.
        let bases = vec![None, Some(0), Some(1), None, Some(0)];
        let mut schedule = Schedule::new(bases, 3);
        assert_eq!(run(&mut schedule, &[]), [vec![0, 3], vec![1, 4], vec![2]]);
        assert!((0..5).all(|n| schedule.state(n) == State::Done));
    }

    #[test]
    fn a_failed_base_skips_the_images_on_it_and_stops_new_starts() {
        // 0 <- 1 <- 2; 3, 4 alone; 0 fails while 3 runs: 3 ends, 4 never starts.
        let bases = vec![None, Some(0), Some(1), None, None];
        let mut schedule = Schedule::new(bases, 2);
        assert_eq!(schedule.start(), [0, 3]);
        schedule.finished(0, false);
        assert_eq!(schedule.state(1), State::Skipped(Skip::BaseFailed(0)));
        assert_eq!(schedule.state(2), State::Skipped(Skip::BaseFailed(0)));
        assert!(schedule.start().is_empty());
        assert!(!schedule.over(), "3 still runs");
        schedule.finished(3, true);
        assert!(schedule.over());
        assert_eq!(schedule.state(3), State::Done);
        assert_eq!(schedule.state(4), State::Skipped(Skip::Stopped));
    }

    #[test]
    fn the_run_ends_when_everything_failed_or_skipped() {
        let mut schedule = Schedule::new(vec![None, Some(0)], 4);
        assert_eq!(run(&mut schedule, &[0]), [vec![0]]);
        assert_eq!(schedule.state(0), State::Failed);
        assert_eq!(schedule.state(1), State::Skipped(Skip::BaseFailed(0)));
    }

    fn file(text: &str) -> SpecFile {
        SpecFile::parse(Path::new("s.toml"), text).unwrap()
    }

    #[test]
    fn the_graph_shares_a_named_base_and_orders_bases_first() {
        let file = file(
            "[images.app]\nbase_image = { spec = \"mid\" }\n\
             [images.mid]\nbase_image = { spec = \"base\" }\npackages = [\"numpy\"]\n\
             [images.base]\nname = \"base\"\napt_packages = [\"git\"]\n\
             [images.inline]\nname = \"inline\"\n\
             [images.inline.base_image]\nname = \"base\"\napt_packages = [\"git\"]\n\
             [images.alone]\nname = \"alone\"\n",
        );
        let images = file.images().unwrap();
        let graph = Graph::of(&images, true);
        let keys: Vec<_> = graph.nodes.iter().map(|n| n.key).collect();
        let index = |k| keys.iter().position(|key| *key == Some(k)).unwrap();
        // The inline copy of `base` is written elsewhere (its positions differ): a node of
        // its own, as it is a spec of its own to flytekit.
        assert_eq!(graph.nodes.len(), 6, "{keys:?}");
        assert_eq!(graph.nodes[index("app")].base, Some(index("mid")));
        assert_eq!(graph.nodes[index("mid")].base, Some(index("base")));
        let inline_base = graph.nodes[index("inline")].base.unwrap();
        assert_eq!(graph.nodes[inline_base].key, None);
        assert_eq!(graph.nodes[index("alone")].base, None);
        assert!(
            graph
                .bases()
                .iter()
                .enumerate()
                .all(|(n, b)| b.is_none_or(|b| b < n))
        );
        let built = Graph::of(&images, false);
        assert!(
            built
                .nodes
                .iter()
                .all(|n| n.base.is_none() && n.key.is_some())
        );
    }

    #[test]
    fn a_nested_base_no_key_names_is_a_node_of_its_own() {
        let file = file(
            "[images.a]\nname = \"a\"\n[images.a.base_image]\nname = \"hidden\"\n\
             [images.b]\nname = \"b\"\n",
        );
        let images = file.images().unwrap();
        let graph = Graph::of(&images, true);
        assert_eq!(graph.nodes.len(), 3);
        assert_eq!(graph.nodes[0].key, None);
        assert_eq!(graph.nodes[1].key, Some("a"));
        assert_eq!(graph.bases(), [None, Some(0), None]);
    }
}
