//! A config's environment as Docker's `ENV` instruction changes it: Docker expands `$NAME`
//! and `${NAME}` in an `ENV` instruction with the environment from *before* that
//! instruction (`moby/buildkit` `frontend/dockerfile/shell/lex.go`). The daemonless builder
//! gives its dependency image the environment the Dockerfile's `ENV` lines would
//! (`crate::builders::daemonless::config`).

/// The `PATH` BuildKit gives an image whose config sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An environment in the config's order (`KEY=VALUE` entries; a later `ENV` of the same key
/// replaces the value in place).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvList(Vec<(String, String)>);

impl EnvList {
    /// The environment of a config's `Env` list.
    pub fn from_config(entries: &[String]) -> EnvList {
        let mut env = EnvList::default();
        for entry in entries {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            env.set(k, v);
        }
        env
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (in place when it is there, else at the end).
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    /// The config's `Env` list.
    pub fn to_config(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// A `$` form Docker's word expansion gives a meaning imagespec does not reproduce
/// (`${NAME:-default}`, `$1`, `$$`…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` uses `$` in a way only Docker's shell lexer expands")]
pub struct Unexpandable {
    pub word: String,
}

/// `word` as Docker's `ENV` expands it against `env`: `$NAME` and `${NAME}` are replaced
/// (unset: empty), a `$` not followed by a name is kept.
pub fn expand(word: &str, env: &EnvList) -> Result<String, Unexpandable> {
    let unexpandable = || Unexpandable {
        word: word.to_string(),
    };
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        match chars.peek() {
            Some(c) if c.is_alphabetic() || *c == '_' => {}
            // `$` then something that starts no name: Docker keeps the `$`; digits and
            // special parameters (`$1`, `$$`, `$@`) have meanings of their own.
            Some(c) if !braced && !c.is_ascii_digit() && !"@*#?-$!".contains(*c) => {
                out.push('$');
                continue;
            }
            None if !braced => {
                out.push('$');
                continue;
            }
            _ => return Err(unexpandable()),
        }
        while let Some(&c) = chars.peek() {
            if c.is_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.next() != Some('}') {
            return Err(unexpandable());
        }
        out.push_str(env.get(&name).unwrap_or(""));
    }
    Ok(out)
}

/// One `ENV k1=v1 k2=v2…` instruction: every value expanded against `env` as it was before
/// the instruction, then set in order.
pub fn env_instruction(env: &EnvList, pairs: &[(String, String)]) -> Result<EnvList, Unexpandable> {
    let mut out = env.clone();
    for (k, v) in pairs {
        out.set(k, &expand(v, env)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_expanded_with_the_values_before_the_instruction() {
        let base = EnvList::from_config(&["PATH=/usr/bin".to_string()]);
        let pairs = [
            ("PATH".to_string(), "/root/.venv/bin:$PATH".to_string()),
            ("OLD".to_string(), "${PATH}".to_string()),
        ];
        let env = env_instruction(&base, &pairs).unwrap();
        assert_eq!(env.get("PATH"), Some("/root/.venv/bin:/usr/bin"));
        assert_eq!(
            env.get("OLD"),
            Some("/usr/bin"),
            "the value from before the instruction"
        );
    }

    fn env(entries: &[&str]) -> EnvList {
        EnvList::from_config(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn expansion_follows_dockers_env_rules() {
        let e = env(&["PATH=/bin", "HOME_DIR=/h"]);
        assert_eq!(expand("$PATH:/x", &e).unwrap(), "/bin:/x");
        assert_eq!(expand("${HOME_DIR}x", &e).unwrap(), "/hx");
        assert_eq!(expand("$UNSET-a", &e).unwrap(), "-a", "unset is empty");
        assert_eq!(
            expand("x$HOME", &e).unwrap(),
            "x",
            "as Docker did in the e2e image"
        );
        assert_eq!(expand("cost: 5$", &e).unwrap(), "cost: 5$");
        assert_eq!(expand("a$/b", &e).unwrap(), "a$/b");
        for unsupported in ["${PATH:-x}", "$1", "$$", "${PATH", "${}"] {
            assert!(expand(unsupported, &e).is_err(), "{unsupported}");
        }
    }

    #[test]
    fn an_instruction_sees_the_environment_from_before_it() {
        let base = env(&["A=1"]);
        let pairs = [("A".into(), "2".into()), ("B".into(), "$A".into())];
        let out = env_instruction(&base, &pairs).unwrap();
        assert_eq!(out.to_config(), ["A=2", "B=1"]);
    }
}
