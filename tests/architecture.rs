//! The shape of `src/`, checked from the code itself (docs/architecture.md, *Layout*):
//!
//! - **layering**: docs/architecture.md's *Layout* lists the library's modules from the top of the
//!   pipeline down; a module may use (`crate::x`, outside `#[cfg(test)]`) only modules listed
//!   below it, so dependencies point one way and there are no module cycles;
//! - **function length**: no function in `src/` is longer than [`MAX_LINES`]; the longest are
//!   printed (`cargo test --test architecture -- --nocapture`, as CI runs it).
//!
//! Both read the syntax tree (syn), so comments, doc links and strings never count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// The longest a function may be, signature to closing brace.
const MAX_LINES: usize = 120;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file of the library under `src/` (not the binary, `main.rs` and `cli/`: it
/// uses the library as `imagespec::`).
fn library_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root().join("src"))
        .into_iter()
        .map(|e| e.expect("walk src/").into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| !matches!(module_of(p).as_str(), "main" | "cli"))
        .collect();
    files.sort();
    files
}

/// `src/…` as the reader knows it.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).expect("read a source file");
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The top-level module a file belongs to: `src/engine/run.rs` → `engine`, `src/lib.rs` →
/// `lib`.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(root().join("src")).expect("under src/");
    let first = relative.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// docs/architecture.md's layout block, top to bottom: each line `  name/` or `  name.rs` (several
/// names on one line are separated by `, `), the description after two spaces.
fn declared_order() -> Vec<String> {
    let readme =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let layout = readme
        .split("\n## Layout")
        .nth(1)
        .expect("docs/architecture.md has a ## Layout section");
    let block = layout
        .split("```")
        .nth(1)
        .expect("the Layout section has a code block");
    let mut order = Vec::new();
    for line in block.lines() {
        let Some(entry) = line.strip_prefix("  ") else {
            continue;
        };
        if entry.starts_with(' ') {
            continue; // a description's continuation
        }
        let names = entry.split("  ").next().unwrap_or_default();
        for name in names.split(", ") {
            let name = name.trim();
            let module = name
                .strip_suffix('/')
                .or_else(|| name.strip_suffix(".rs"))
                .unwrap_or(name);
            if !module.is_empty() {
                order.push(module.to_string());
            }
        }
    }
    order
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// The modules a file names through `crate::…`, outside `#[cfg(test)]` items.
#[derive(Default)]
struct CrateUses {
    modules: BTreeMap<String, usize>,
}

impl CrateUses {
    fn note(&mut self, module: &syn::Ident) {
        let line = module.span().start().line;
        self.modules.entry(module.to_string()).or_insert(line);
    }

    fn use_tree(&mut self, tree: &syn::UseTree, under_crate: bool) {
        match tree {
            syn::UseTree::Path(p) if p.ident == "crate" && !under_crate => {
                self.use_tree(&p.tree, true)
            }
            syn::UseTree::Path(p) if under_crate => self.note(&p.ident),
            syn::UseTree::Name(n) if under_crate => self.note(&n.ident),
            syn::UseTree::Rename(r) if under_crate => self.note(&r.ident),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(t, under_crate)),
            _ => {}
        }
    }
}

impl<'ast> Visit<'ast> for CrateUses {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, false);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        if segments.next().is_some_and(|s| s.ident == "crate")
            && let Some(module) = segments.next()
        {
            self.note(&module.ident);
        }
        syn::visit::visit_path(self, path);
    }
}

#[test]
fn modules_use_only_the_modules_below_them() {
    let order = declared_order();
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut wrong = Vec::new();
    for file in library_files() {
        let module = module_of(&file);
        let Some(own) = rank(&module) else {
            wrong.push(format!(
                "{}: module `{module}` is not in docs/architecture.md's Layout",
                file.display()
            ));
            continue;
        };
        let mut uses = CrateUses::default();
        uses.visit_file(&parse(&file));
        for (used, line) in uses.modules {
            // Items of lib.rs itself (`crate::Error`, `crate::load`) are the top: only lib.rs
            // may name them; names of modules are checked against the order.
            let used_rank = rank(&used).unwrap_or(rank("lib").expect("lib in the Layout"));
            if used != module && used_rank <= own {
                wrong.push(format!(
                    "{}:{line}: `{module}` uses `crate::{used}`, which the Layout lists above it",
                    shown(&file)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run back up the Layout order ({}):\n{}",
        order.join(" > "),
        wrong.join("\n")
    );
}

/// Every function with a body: where it starts and how many lines it spans.
#[derive(Default)]
struct Lengths {
    found: Vec<(usize, String, usize)>,
}

impl Lengths {
    fn note(&mut self, name: &syn::Ident, sig: &syn::Signature, body: &syn::Block) {
        let start = sig.fn_token.span.start().line;
        let end = body.brace_token.span.close().end().line;
        self.found.push((end + 1 - start, name.to_string(), start));
    }
}

impl<'ast> Visit<'ast> for Lengths {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.note(&f.sig.ident, &f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.note(&f.sig.ident, &f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(body) = &f.default {
            self.note(&f.sig.ident, &f.sig, body);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let mut all = Vec::new();
    for file in library_files().into_iter().chain(walk_binary_files()) {
        let mut lengths = Lengths::default();
        lengths.visit_file(&parse(&file));
        let shown = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for (lines, name, line) in lengths.found {
            all.push((lines, format!("{shown}:{line} {name}")));
        }
    }
    all.sort_by(|a, b| b.cmp(a));
    println!("the longest functions in src/ (limit {MAX_LINES} lines):");
    for (lines, at) in all.iter().take(10) {
        println!("{lines:>5}  {at}");
    }
    let long: Vec<String> = all
        .iter()
        .filter(|(lines, _)| *lines > MAX_LINES)
        .map(|(lines, at)| format!("{lines} lines: {at}"))
        .collect();
    assert!(
        long.is_empty(),
        "functions longer than {MAX_LINES} lines; split them:\n{}",
        long.join("\n")
    );
}

/// The binary's files (`main.rs`, `cli/`): function lengths count there too.
fn walk_binary_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("src/main.rs")];
    files.extend(
        walkdir::WalkDir::new(root().join("src/cli"))
            .into_iter()
            .map(|e| e.expect("walk src/cli").into_path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs")),
    );
    files
}

#[test]
fn the_layout_names_every_module() {
    let order = declared_order();
    for file in library_files() {
        let module = module_of(&file);
        assert!(
            order.contains(&module),
            "{}: add `{module}` to docs/architecture.md's Layout",
            shown(&file)
        );
    }
}
