//! Untrusted input never panics: random and mutated spec text in every format, and random
//! `tag_format` templates and ignore patterns, only ever produce a value or an error.

use imagespec::py::format::format_spec_hash;
use imagespec::spec::SpecFile;
use proptest::prelude::*;
use std::path::Path;

const SEEDS: [(&str, &str); 3] = [
    (
        "s.toml",
        "name = \"app\"\nregistry = \"localhost:5000\"\npackages = [\"a\", \"b\"]\nenv = { A = \"1\" }\nbase_image = { name = \"b\", python_version = 3.10 }\n[builder_options]\nx = [1, 2.5, true]\n",
    ),
    (
        "s.yaml",
        "name: app\nenv: &e {A: yes, B: 0755}\nbase_image:\n  <<: *e\n  name: b\npip_secret_mounts: [[a, b]]\nimages: ~\n",
    ),
    (
        "s.json",
        "{\"name\": \"app\", \"packages\": [\"a\"], \"builder_config\": {\"x\": [1, 2.5e3, null]}}",
    ),
];

fn mutate(seed: &str, cuts: &[(usize, usize, String)]) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for (at, len, insert) in cuts {
        let at = at % (text.len() + 1);
        let end = (at + len).min(text.len());
        text.splice(at..end, insert.chars());
    }
    text.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}", which in 0usize..3) {
        let _ = SpecFile::parse(Path::new(SEEDS[which].0), &text);
    }

    #[test]
    fn mutated_specs_never_panic(
        which in 0usize..3,
        cuts in prop::collection::vec((0usize..400, 0usize..6, "[\\[\\]{}:,\"'\\-\\n #&*!<>a-z0-9.]{0,4}"), 1..6),
    ) {
        let (name, seed) = SEEDS[which];
        let _ = SpecFile::parse(Path::new(name), &mutate(seed, &cuts));
    }

    #[test]
    fn tag_format_never_panics(template in "[{}a-z_:!.<>^0-9\\[\\]]{0,24}") {
        let _ = format_spec_hash(&template, "abc");
    }

    /// `.dockerignore`/`.gitignore`-style patterns come from the source tree: both glob
    /// dialects turn any of them into a matcher or an error, and matching never panics.
    #[test]
    fn ignore_patterns_never_panic(
        pattern in "[\\[\\]!*?^/a-z.\\\\-]{0,16}",
        path in "[a-z./*?\\[\\]-]{0,16}",
    ) {
        if let Ok(glob) = imagespec::py::fnmatch::python(&pattern) {
            let _ = glob.matches(&path);
        }
        if let Ok(glob) = imagespec::py::fnmatch::docker_py(&pattern) {
            let _ = glob.matches(&path);
        }
    }
}
