//! Which packages `apt-get install --no-install-recommends NAMES` adds to an image, worked
//! out without apt: every name's candidate (the highest version of the native architecture
//! or `all`, over every source, as apt's default pins give), then its `Pre-Depends` and
//! `Depends` (not `Recommends`/`Suggests`), each group `a | b` satisfied by what is
//! installed or already chosen, else by its first alternative that has a candidate — a real
//! package, or a virtual one (`Provides`) with a single provider, as apt picks without
//! asking.
//!
//! What apt would do differently is an error naming the package, so that the caller leaves
//! the image to apt: an installed package apt would upgrade (a requested one with a newer
//! candidate, or a dependency whose installed version is too old), a virtual package with
//! several providers, a candidate that `Conflicts` or `Breaks` with what is installed.

use super::deb822::Paragraph;
use super::relation::{self, Op, Relation};
use std::collections::{BTreeMap, BTreeSet};

/// A package one of the sources offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    /// Its paragraph of the `Packages` index.
    pub paragraph: Paragraph,
    /// The mirror it comes from (`Filename` is relative to it).
    pub mirror: String,
}

impl Available {
    pub fn name(&self) -> &str {
        self.paragraph.get("Package").unwrap_or_default()
    }
    pub fn version(&self) -> &str {
        self.paragraph.get("Version").unwrap_or_default()
    }
}

/// A package the base has (`Status: install ok installed` in dpkg's `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: String,
    pub provides: Vec<Relation>,
}

/// Why the resolution is apt's to make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("apt package {0:?} is in none of the base's sources")]
    NotFound(String),
    #[error("{package} needs {relation}, which no source satisfies")]
    Unsatisfiable { package: String, relation: String },
    #[error("apt would upgrade the installed {name} {installed} to {candidate}")]
    Upgrade {
        name: String,
        installed: String,
        candidate: String,
    },
    #[error(
        "{package} needs the virtual package {name}, which several packages provide ({providers})"
    )]
    Virtual {
        package: String,
        name: String,
        providers: String,
    },
    #[error("{package} conflicts with the installed {installed}")]
    Conflict { package: String, installed: String },
    #[error("{package}'s {field}: {source}")]
    Field {
        package: String,
        field: &'static str,
        #[source]
        source: relation::RelationError,
    },
}

/// The installed packages of a dpkg `status` file's paragraphs.
pub fn installed(status: &[Paragraph]) -> BTreeMap<String, Installed> {
    status
        .iter()
        .filter(|p| {
            p.get("Status")
                .is_some_and(|s| s.split_whitespace().nth(2) == Some("installed"))
        })
        .filter_map(|p| {
            let provides = relation::parse(p.get("Provides").unwrap_or_default()).ok()?;
            Some((
                p.get("Package")?.to_string(),
                Installed {
                    version: p.get("Version")?.to_string(),
                    provides: provides.into_iter().flatten().collect(),
                },
            ))
        })
        .collect()
}

/// The packages of the sources for one architecture, by name and by what they provide.
pub struct Universe {
    candidates: BTreeMap<String, Available>,
    /// Virtual name → the candidates providing it, with the version provided.
    providers: BTreeMap<String, Vec<(String, Option<String>)>>,
}

impl Universe {
    /// Each name's candidate among `available` (native `arch` or `all`; the highest
    /// version wins, the first listed on a tie).
    pub fn new(arch: &str, available: impl IntoIterator<Item = Available>) -> Universe {
        let mut candidates: BTreeMap<String, Available> = BTreeMap::new();
        for a in available {
            let a_arch = a.paragraph.get("Architecture").unwrap_or_default();
            if a_arch != arch && a_arch != "all" {
                continue;
            }
            match candidates.get(a.name()) {
                Some(have)
                    if super::version::compare(a.version(), have.version())
                        != std::cmp::Ordering::Greater => {}
                _ => {
                    candidates.insert(a.name().to_string(), a);
                }
            }
        }
        let mut providers: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
        for (name, a) in &candidates {
            let provides = relation::parse(a.paragraph.get("Provides").unwrap_or_default());
            for r in provides.into_iter().flatten().flatten() {
                let version = r.version.map(|(_, v)| v);
                providers
                    .entry(r.name)
                    .or_default()
                    .push((name.clone(), version));
            }
        }
        Universe {
            candidates,
            providers,
        }
    }
}

/// What is installed or chosen so far.
struct State<'a> {
    universe: &'a Universe,
    installed: &'a BTreeMap<String, Installed>,
    chosen: BTreeSet<String>,
    /// Dependencies first.
    order: Vec<Available>,
}

/// The packages to add for `names`, dependencies before their dependents.
pub fn resolve(
    universe: &Universe,
    installed: &BTreeMap<String, Installed>,
    names: &[String],
) -> Result<Vec<Available>, ResolveError> {
    let mut state = State {
        universe,
        installed,
        chosen: BTreeSet::new(),
        order: Vec::new(),
    };
    for name in names {
        if let Some(have) = installed.get(name.as_str()) {
            if let Some(c) = universe.candidates.get(name.as_str())
                && super::version::compare(c.version(), &have.version).is_gt()
            {
                return Err(ResolveError::Upgrade {
                    name: name.clone(),
                    installed: have.version.clone(),
                    candidate: c.version().to_string(),
                });
            }
            continue;
        }
        let group = [Relation {
            name: name.clone(),
            arch: None,
            version: None,
        }];
        state.satisfy("the spec", &group)?;
    }
    Ok(state.order)
}

impl State<'_> {
    fn satisfied(&self, r: &Relation) -> bool {
        let matches = |version: &str| {
            r.version
                .as_ref()
                .is_none_or(|(op, v)| op.holds(version, v))
        };
        let provided = |provides: &[Relation]| {
            provides.iter().any(|p| {
                p.name == r.name
                    && match (&r.version, &p.version) {
                        (None, _) => true,
                        (Some(_), Some((Op::Eq, v))) => matches(v),
                        (Some(_), _) => false,
                    }
            })
        };
        if let Some(have) = self.installed.get(&r.name)
            && matches(&have.version)
        {
            return true;
        }
        if self.installed.values().any(|i| provided(&i.provides)) {
            return true;
        }
        self.chosen.iter().any(|name| {
            let c = &self.universe.candidates[name];
            (name == &r.name && matches(c.version()))
                || relation::parse(c.paragraph.get("Provides").unwrap_or_default())
                    .is_ok_and(|p| provided(&p.into_iter().flatten().collect::<Vec<_>>()))
        })
    }

    /// Satisfies one `a | b` group needed by `package`.
    fn satisfy(&mut self, package: &str, group: &[Relation]) -> Result<(), ResolveError> {
        if group.iter().any(|r| self.satisfied(r)) {
            return Ok(());
        }
        for r in group {
            if let Some(name) = self.pick(package, r)? {
                return self.add(&name);
            }
        }
        let first = &group[0];
        if let Some(have) = self.installed.get(&first.name)
            && let Some(c) = self.universe.candidates.get(&first.name)
        {
            return Err(ResolveError::Upgrade {
                name: first.name.clone(),
                installed: have.version.clone(),
                candidate: c.version().to_string(),
            });
        }
        if package == "the spec" {
            return Err(ResolveError::NotFound(first.name.clone()));
        }
        Err(ResolveError::Unsatisfiable {
            package: package.to_string(),
            relation: group_text(group),
        })
    }

    /// The candidate that satisfies `r`, if any (a real package first, else a single
    /// provider).
    fn pick(&self, package: &str, r: &Relation) -> Result<Option<String>, ResolveError> {
        if self.installed.contains_key(&r.name) {
            return Ok(None);
        }
        if let Some(c) = self.universe.candidates.get(&r.name)
            && r.version
                .as_ref()
                .is_none_or(|(op, v)| op.holds(c.version(), v))
        {
            return Ok(Some(r.name.clone()));
        }
        let providers: Vec<&String> = self
            .universe
            .providers
            .get(&r.name)
            .into_iter()
            .flatten()
            .filter(|(_, v)| match (&r.version, v) {
                (None, _) => true,
                (Some((op, want)), Some(have)) => op.holds(have, want),
                (Some(_), None) => false,
            })
            .map(|(name, _)| name)
            .collect();
        match providers.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many => Err(ResolveError::Virtual {
                package: package.to_string(),
                name: r.name.clone(),
                providers: many
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Chooses `name`'s candidate and, before it, what it depends on.
    fn add(&mut self, name: &str) -> Result<(), ResolveError> {
        if !self.chosen.insert(name.to_string()) {
            return Ok(());
        }
        let candidate = self.universe.candidates[name].clone();
        self.check_conflicts(&candidate)?;
        for field in ["Pre-Depends", "Depends"] {
            let groups = relation::parse(candidate.paragraph.get(field).unwrap_or_default())
                .map_err(|source| ResolveError::Field {
                    package: name.to_string(),
                    field,
                    source,
                })?;
            for group in groups {
                self.satisfy(name, &group)?;
            }
        }
        self.order.push(candidate);
        Ok(())
    }

    fn check_conflicts(&self, candidate: &Available) -> Result<(), ResolveError> {
        for field in ["Conflicts", "Breaks"] {
            let groups = relation::parse(candidate.paragraph.get(field).unwrap_or_default())
                .map_err(|source| ResolveError::Field {
                    package: candidate.name().to_string(),
                    field,
                    source,
                })?;
            for r in groups.into_iter().flatten() {
                let Some(have) = self.installed.get(&r.name) else {
                    continue;
                };
                if r.version
                    .as_ref()
                    .is_none_or(|(op, v)| op.holds(&have.version, v))
                {
                    return Err(ResolveError::Conflict {
                        package: candidate.name().to_string(),
                        installed: format!("{} {}", r.name, have.version),
                    });
                }
            }
        }
        Ok(())
    }
}

fn group_text(group: &[Relation]) -> String {
    group
        .iter()
        .map(|r| match &r.version {
            Some((op, v)) => format!("{} ({} {v})", r.name, op_text(*op)),
            None => r.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Lt => "<<",
        Op::Le => "<=",
        Op::Eq => "=",
        Op::Ge => ">=",
        Op::Gt => ">>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::deb822;

    fn universe() -> Universe {
        let text = std::fs::read_to_string("testdata/apt/Packages").unwrap();
        let available = deb822::parse(&text)
            .unwrap()
            .into_iter()
            .map(|paragraph| Available {
                paragraph,
                mirror: "http://deb.debian.org/debian".into(),
            });
        Universe::new("amd64", available)
    }

    fn base() -> BTreeMap<String, Installed> {
        let text = std::fs::read_to_string("testdata/apt/status").unwrap();
        installed(&deb822::parse(&text).unwrap())
    }

    fn names(r: Result<Vec<Available>, ResolveError>) -> Vec<String> {
        r.unwrap()
            .iter()
            .map(|a| format!("{} {}", a.name(), a.version()))
            .collect()
    }

    fn ask(names_: &[&str]) -> Result<Vec<Available>, ResolveError> {
        let names_: Vec<String> = names_.iter().map(|s| s.to_string()).collect();
        resolve(&universe(), &base(), &names_)
    }

    #[test]
    fn installed_packages_are_those_dpkg_calls_installed() {
        let base = base();
        assert!(base.contains_key("libc6"));
        assert!(!base.contains_key("removed-pkg"), "config-files only");
        assert_eq!(base["mawk"].provides[0].name, "awk");
    }

    /// What asking for one package adds, dependencies first.
    #[test]
    fn dependencies_first_installed_skipped_alternatives_and_virtuals_resolved() {
        let cases: [(&str, &[&str], &str); 3] = [
            (
                "jq",
                &["libonig5 6.9.8-1", "libjq1 1.6-2.1", "jq 1.6-2.1"],
                "libc6 is installed; the newer libjq1 of the updates source wins",
            ),
            ("libc6", &[], "installed already"),
            (
                // tool: Depends: missing-pkg | libonig5, awk, mail-transport-agent
                "tool",
                &["libonig5 6.9.8-1", "exim-light 4.96", "tool 1.0"],
                "the first satisfiable alternative; awk is provided by the installed mawk; \
                 mail-transport-agent by its single provider",
            ),
        ];
        for (asked, added, why) in cases {
            assert_eq!(names(ask(&[asked])), added, "{asked}: {why}");
        }
    }

    #[test]
    fn the_native_architecture_and_all_only() {
        assert_eq!(names(ask(&["data-all"])), ["data-all 2"]);
        assert_eq!(
            ask(&["arm-only"]),
            Err(ResolveError::NotFound("arm-only".into()))
        );
    }

    #[test]
    fn what_apt_would_decide_otherwise_is_an_error_naming_the_package() {
        assert_eq!(ask(&["nope"]), Err(ResolveError::NotFound("nope".into())));
        assert!(
            matches!(ask(&["needs-new-libc"]), Err(ResolveError::Upgrade { name, .. }) if name == "libc6")
        );
        assert!(
            matches!(ask(&["zlib1g"]), Err(ResolveError::Upgrade { name, .. }) if name == "zlib1g")
        );
        assert!(
            matches!(ask(&["wants-ftp"]), Err(ResolveError::Virtual { name, .. }) if name == "ftp-client")
        );
        assert!(
            matches!(ask(&["breaks-mawk"]), Err(ResolveError::Conflict { package, .. }) if package == "breaks-mawk")
        );
        assert_eq!(
            ask(&["needs-missing"]).unwrap_err().to_string(),
            "needs-missing needs nothing-here (>= 2), which no source satisfies"
        );
    }
}
