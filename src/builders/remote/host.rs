//! Where a remote buildkitd listens and how to reach it, as buildctl takes it:
//! `tcp://HOST:PORT` (with `--tlscacert`, `--tlscert`, `--tlskey`, `--tlsservername`: TLS,
//! mutual when a client certificate is given) or `unix:///PATH`. From `--builder-host`,
//! else `BUILDKIT_HOST` (buildctl's variable), else the defaults file's `buildkit_host`;
//! never part of the image's name or hash. Several builders (`--builder-host` given more
//! than once, or `buildkit_hosts` in the defaults file) share the images of one run: each
//! BuildKit build takes the least busy one ([`Load`]).
//!
//! ```
//! use imagespec::builders::remote::host::{BuilderHost, Endpoint};
//! let host = BuilderHost::parse("tcp://127.0.0.1:1234").unwrap();
//! assert_eq!(host.endpoint, Endpoint::Tcp { host: "127.0.0.1".into(), port: 1234 });
//! assert_eq!(host.to_string(), "tcp://127.0.0.1:1234");
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// buildctl's variable for the builder's address.
pub const BUILDKIT_HOST_ENV: &str = "BUILDKIT_HOST";

/// The address of a buildkitd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// The TLS files of a connection.
pub type TlsFiles = crate::spec::defaults::Tls<PathBuf, String>;

/// One remote builder: its address and TLS files. A list of them (builders shared by
/// images built in parallel) is a `Vec<BuilderHost>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderHost {
    pub endpoint: Endpoint,
    /// `None`: plain gRPC (a unix socket, or TCP without TLS options).
    pub tls: Option<TlsFiles>,
}

/// A builder address that is not `tcp://HOST:PORT` or `unix:///PATH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "builder host `{given}`: {why}; expected tcp://HOST:PORT or unix:///PATH (as BUILDKIT_HOST)"
)]
pub struct HostError {
    pub given: String,
    pub why: &'static str,
}

impl BuilderHost {
    /// Parses `tcp://HOST:PORT` or `unix:///PATH` (no TLS; see [`BuilderHost::with_tls`]).
    pub fn parse(given: &str) -> Result<BuilderHost, HostError> {
        let error = |why| HostError {
            given: given.to_string(),
            why,
        };
        let endpoint = if let Some(path) = given.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(error("a unix socket's path must be absolute"));
            }
            Endpoint::Unix(PathBuf::from(path))
        } else if let Some(rest) = given.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| error("no port"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| error("the port is not a number"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || host.contains(['/', '@']) {
                return Err(error("no host name"));
            }
            Endpoint::Tcp {
                host: host.to_string(),
                port,
            }
        } else {
            return Err(error("unknown scheme"));
        };
        Ok(BuilderHost {
            endpoint,
            tls: None,
        })
    }

    /// With TLS when `files` names any (a unix socket takes none).
    pub fn with_tls(mut self, files: TlsFiles) -> BuilderHost {
        if files.any() && matches!(self.endpoint, Endpoint::Tcp { .. }) {
            self.tls = Some(files);
        }
        self
    }

    /// The name the server's certificate must hold.
    pub fn server_name(&self) -> Option<String> {
        match (&self.endpoint, &self.tls) {
            (
                _,
                Some(TlsFiles {
                    server_name: Some(name),
                    ..
                }),
            ) => Some(name.clone()),
            (Endpoint::Tcp { host, .. }, _) => Some(host.clone()),
            (Endpoint::Unix(_), _) => None,
        }
    }
}

impl std::fmt::Display for BuilderHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.endpoint {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// The builders' addresses: the flags (every `--builder-host`), else `BUILDKIT_HOST` (one
/// address, as buildctl reads it), else the defaults file's `buildkit_hosts`, else its
/// `buildkit_host`. Empty ones count as not given.
pub fn choose_all<'a>(
    flags: &'a [String],
    env: Option<&'a str>,
    file_hosts: Option<&'a [String]>,
    file_host: Option<&'a str>,
) -> Vec<&'a str> {
    let given = |list: &'a [String]| -> Vec<&'a str> {
        list.iter()
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect()
    };
    [
        given(flags),
        choose(None, env, None).into_iter().collect(),
        file_hosts.map(given).unwrap_or_default(),
        choose(None, None, file_host).into_iter().collect(),
    ]
    .into_iter()
    .find(|hosts| !hosts.is_empty())
    .unwrap_or_default()
}

/// How many BuildKit builds each builder of a run has going: shared by the images of one
/// run (clones count together), so that each build takes the least busy builder. It is the
/// run's state, not a setting: any two compare equal.
#[derive(Debug, Clone, Default)]
pub struct Load(Arc<Mutex<Vec<usize>>>);

impl PartialEq for Load {
    fn eq(&self, _: &Load) -> bool {
        true
    }
}

impl Eq for Load {}

impl Load {
    /// One more build on the least busy of `builders` builders (the first of equally busy
    /// ones), until the lease is dropped; `None` when there are no builders.
    pub fn take(&self, builders: usize) -> Option<Lease> {
        let mut busy = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if busy.len() < builders {
            busy.resize(builders, 0);
        }
        let index = least_busy(&busy[..builders])?;
        busy[index] += 1;
        Some(Lease {
            load: self.clone(),
            index,
        })
    }
}

/// The index of the smallest count, the first of equal ones.
fn least_busy(busy: &[usize]) -> Option<usize> {
    busy.iter()
        .enumerate()
        .min_by_key(|(i, n)| (**n, *i))
        .map(|(i, _)| i)
}

/// A build on builder [`Lease::index`], counted in its [`Load`] until dropped.
#[derive(Debug)]
pub struct Lease {
    load: Load,
    index: usize,
}

impl Lease {
    /// The builder's index in the run's list.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut busy = self.load.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(self.index) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The builder's address from the flag, else `BUILDKIT_HOST`, else the defaults file: the
/// first one given (an empty one counts as not given, as buildctl reads its variable).
pub fn choose<'a>(
    flag: Option<&'a str>,
    env: Option<&'a str>,
    defaults: Option<&'a str>,
) -> Option<&'a str> {
    [flag, env, defaults]
        .into_iter()
        .flatten()
        .find(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_addresses_parse_as_buildctl_takes_them() {
        let tcp = BuilderHost::parse("tcp://buildkit.example:1234").unwrap();
        assert_eq!(
            tcp.endpoint,
            Endpoint::Tcp {
                host: "buildkit.example".into(),
                port: 1234
            }
        );
        assert_eq!(tcp.server_name().as_deref(), Some("buildkit.example"));
        let unix = BuilderHost::parse("unix:///run/buildkit/buildkitd.sock").unwrap();
        assert_eq!(unix.to_string(), "unix:///run/buildkit/buildkitd.sock");
        assert_eq!(unix.server_name(), None);
        let v6 = BuilderHost::parse("tcp://[::1]:1234").unwrap();
        assert_eq!(v6.to_string(), "tcp://[::1]:1234");
    }

    #[test]
    fn a_bad_address_says_what_is_wrong() {
        for (given, why) in [
            ("buildkit:1234", "unknown scheme"),
            ("tcp://buildkit", "no port"),
            ("tcp://buildkit:port", "the port is not a number"),
            ("tcp://:1234", "no host name"),
            ("unix://run/b.sock", "a unix socket's path must be absolute"),
        ] {
            assert_eq!(BuilderHost::parse(given).unwrap_err().why, why, "{given}");
        }
        let message = BuilderHost::parse("http://x:1").unwrap_err().to_string();
        assert_eq!(
            message,
            "builder host `http://x:1`: unknown scheme; expected tcp://HOST:PORT or unix:///PATH (as BUILDKIT_HOST)"
        );
    }

    #[test]
    fn tls_is_on_with_any_tls_option_and_only_over_tcp() {
        let files = TlsFiles {
            ca: Some("ca.pem".into()),
            server_name: Some("buildkitd".into()),
            ..Default::default()
        };
        let tcp = BuilderHost::parse("tcp://10.0.0.1:1234")
            .unwrap()
            .with_tls(files.clone());
        assert_eq!(tcp.tls.as_ref(), Some(&files));
        assert_eq!(tcp.server_name().as_deref(), Some("buildkitd"));
        let plain = BuilderHost::parse("tcp://10.0.0.1:1234")
            .unwrap()
            .with_tls(TlsFiles::default());
        assert_eq!(plain.tls, None);
        let unix = BuilderHost::parse("unix:///b.sock")
            .unwrap()
            .with_tls(files);
        assert_eq!(unix.tls, None);
    }

    #[test]
    fn builds_go_to_the_least_busy_builder_and_leave_it_when_done() {
        assert_eq!(least_busy(&[2, 1, 1]), Some(1));
        assert_eq!(least_busy(&[]), None);
        let load = Load::default();
        let a = load.take(2).unwrap();
        let b = load.take(2).unwrap();
        assert_eq!((a.index(), b.index()), (0, 1));
        let c = load.clone().take(2).unwrap();
        assert_eq!(c.index(), 0, "a clone counts with the others");
        drop(b);
        assert_eq!(load.take(2).unwrap().index(), 1);
        assert!(load.take(0).is_none());
    }

    #[test]
    fn several_builders_come_from_the_flags_else_the_variable_else_the_file() {
        let flags = ["tcp://a:1".to_string(), "tcp://b:1".to_string()];
        let file = ["tcp://c:1".to_string(), "tcp://d:1".to_string()];
        let all = choose_all;
        assert_eq!(
            all(&flags, Some("tcp://e:1"), Some(&file), None),
            ["tcp://a:1", "tcp://b:1"]
        );
        assert_eq!(
            all(&[], Some("tcp://e:1"), Some(&file), None),
            ["tcp://e:1"]
        );
        assert_eq!(
            all(&[], Some(" "), Some(&file), Some("tcp://f:1")),
            ["tcp://c:1", "tcp://d:1"]
        );
        assert_eq!(all(&[], None, None, Some("tcp://f:1")), ["tcp://f:1"]);
        assert!(all(&[], None, None, None).is_empty());
    }

    #[test]
    fn the_flag_comes_before_the_variable_before_the_defaults_file() {
        assert_eq!(
            choose(Some("tcp://a:1"), Some("tcp://b:1"), Some("tcp://c:1")),
            Some("tcp://a:1")
        );
        assert_eq!(
            choose(None, Some("tcp://b:1"), Some("tcp://c:1")),
            Some("tcp://b:1")
        );
        assert_eq!(choose(None, Some(""), Some("tcp://c:1")), Some("tcp://c:1"));
        assert_eq!(choose(None, None, None), None);
    }
}
