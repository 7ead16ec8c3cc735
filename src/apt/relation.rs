//! Package relationship fields (`Depends`, `Pre-Depends`, `Provides`), as Debian policy
//! §7.1 writes them: `a (>= 1.0) | b:any, c [amd64] <!nocheck>`. Architecture restrictions
//! and build profiles only occur in source packages' fields and are dropped; an
//! architecture qualifier (`:any`, `:native`, `:amd64`) is kept apart from the name.

use std::cmp::Ordering;

/// `<<`, `<=`, `=`, `>=`, `>>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    /// Whether `candidate` satisfies `candidate OP wanted`.
    pub fn holds(self, candidate: &str, wanted: &str) -> bool {
        let o = super::version::compare(candidate, wanted);
        match self {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Eq => o == Ordering::Equal,
            Op::Ge => o != Ordering::Less,
            Op::Gt => o == Ordering::Greater,
        }
    }
}

/// One package of a relationship: `name[:arch] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// `any`, `native` or an architecture, after a colon.
    pub arch: Option<String>,
    pub version: Option<(Op, String)>,
}

/// A field that is not a relationship list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `name (op version)`, found {found:?}")]
pub struct RelationError {
    pub found: String,
}

/// The field as AND of ORs: `a | b, c` → `[[a, b], [c]]`.
pub fn parse(field: &str) -> Result<Vec<Vec<Relation>>, RelationError> {
    field
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|group| group.split('|').map(|r| parse_one(r.trim())).collect())
        .collect()
}

fn parse_one(text: &str) -> Result<Relation, RelationError> {
    let bad = || RelationError {
        found: text.to_string(),
    };
    // `[arch]` and `<profile>` restrictions are not for binary packages.
    let text = match text.find(')') {
        Some(end) => &text[..=end],
        None => text.split(['[', '<']).next().unwrap_or(text),
    }
    .trim();
    let (name, version) = match text.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').ok_or_else(bad)?.trim();
            let split = inner
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .ok_or_else(bad)?;
            let op = Op::parse(&inner[..split]).ok_or_else(bad)?;
            (name.trim(), Some((op, inner[split..].trim().to_string())))
        }
        None => (text.trim(), None),
    };
    let (name, arch) = match name.split_once(':') {
        Some((n, a)) => (n, Some(a.to_string())),
        None => (name, None),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(bad());
    }
    Ok(Relation {
        name: name.to_string(),
        arch,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(name: &str, version: Option<(Op, &str)>) -> Relation {
        Relation {
            name: name.into(),
            arch: None,
            version: version.map(|(o, v)| (o, v.into())),
        }
    }

    #[test]
    fn and_of_ors_with_versions_and_qualifiers() {
        let parsed =
            parse("libc6 (>= 2.34), perl:any, liberror-perl | x (<< 2:1) , zlib1g (>=1:1.2.0)")
                .unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[0], vec![rel("libc6", Some((Op::Ge, "2.34")))]);
        assert_eq!(parsed[1][0].arch.as_deref(), Some("any"));
        assert_eq!(
            parsed[2],
            vec![rel("liberror-perl", None), rel("x", Some((Op::Lt, "2:1")))]
        );
        assert_eq!(parsed[3], vec![rel("zlib1g", Some((Op::Ge, "1:1.2.0")))]);
        assert_eq!(parse("").unwrap(), Vec::<Vec<Relation>>::new());
        assert_eq!(
            parse("a [amd64] <!nocheck>").unwrap(),
            vec![vec![rel("a", None)]]
        );
        assert_eq!(
            parse("a (<< 2) [amd64]").unwrap(),
            vec![vec![rel("a", Some((Op::Lt, "2")))]]
        );
    }

    #[test]
    fn malformed_relations_are_errors() {
        for bad in ["a (>= 1", "a (~ 1)", "(>= 1)", "a b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn operators_compare_as_dpkg() {
        assert!(Op::Ge.holds("2.36-9", "2.34"));
        assert!(!Op::Lt.holds("2.36", "2.36"));
        assert!(Op::Le.holds("2.36", "2.36"));
        assert!(Op::Gt.holds("1:1", "9"));
        assert!(Op::Eq.holds("1.0", "1.0"));
    }
}
