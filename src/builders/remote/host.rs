//! Where a remote buildkitd listens and how to reach it, as buildctl takes it:
//! `tcp://HOST:PORT` (with `--tlscacert`, `--tlscert`, `--tlskey`, `--tlsservername`: TLS,
//! mutual when a client certificate is given) or `unix:///PATH`. From `--builder-host`,
//! else `BUILDKIT_HOST` (buildctl's variable), else the defaults file's `buildkit_host`;
//! never part of the image's name or hash.
//!
//! ```
//! use imagespec::builders::remote::host::{BuilderHost, Endpoint};
//! let host = BuilderHost::parse("tcp://127.0.0.1:1234").unwrap();
//! assert_eq!(host.endpoint, Endpoint::Tcp { host: "127.0.0.1".into(), port: 1234 });
//! assert_eq!(host.to_string(), "tcp://127.0.0.1:1234");
//! ```

use std::path::PathBuf;

/// buildctl's variable for the builder's address.
pub const BUILDKIT_HOST_ENV: &str = "BUILDKIT_HOST";

/// The address of a buildkitd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// The TLS files of a connection, as buildctl's flags name them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    /// `--tlscacert`: the CA that signed buildkitd's certificate (else the system's roots).
    pub ca: Option<PathBuf>,
    /// `--tlscert` and `--tlskey`: this client's certificate and key (mutual TLS).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `--tlsservername`: the name buildkitd's certificate must hold (else the host's).
    pub server_name: Option<String>,
}

impl TlsFiles {
    /// Whether any TLS option is given (then the connection uses TLS, as buildctl's does).
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some() || self.server_name.is_some()
    }
}

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
