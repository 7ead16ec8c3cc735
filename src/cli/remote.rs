//! The remote builder's flags (`build` and `plan` alike) and the options they make, with
//! `BUILDKIT_HOST` and the defaults file's `buildkit_host`/`[defaults.buildkit_tls]` under
//! them (docs/remote-builds.md).

use clap::Args;
use imagespec::Error;
use imagespec::builders::remote::RemoteOptions;
use imagespec::builders::remote::cache::{CacheChoice, CacheRef};
use imagespec::builders::remote::host::{self, BuilderHost, TlsFiles};
use imagespec::spec::defaults::Defaults;
use std::path::PathBuf;

/// Where a remote BuildKit builds, how to reach it, and its registry cache.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Remote builder (build and plan alike)")]
pub struct RemoteFlags {
    /// Build on this buildkitd instead of dockerd: `tcp://HOST:PORT` or `unix:///PATH`
    /// (also `BUILDKIT_HOST`, or `buildkit_host` in the defaults file). The builder pushes
    /// the image itself; a registry cache at `<repository>:buildcache` is used. Given
    /// several times (or `buildkit_hosts` in the defaults file), builds are spread over the
    /// builders, the least busy first (`build --jobs`).
    #[arg(long, value_name = "ADDRESS", value_parser = builder_host, action = clap::ArgAction::Append)]
    pub builder_host: Vec<String>,
    /// The CA of the builder's certificate (TLS; as buildctl's flag).
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// This client's certificate (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// This client's private key (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// The name the builder's certificate holds, when it is not the host's.
    #[arg(long, value_name = "NAME")]
    pub tlsservername: Option<String>,
    /// Import the registry cache from REF (`REF` or `type=registry,ref=REF`) instead of
    /// `<repository>:buildcache`.
    #[arg(long, value_name = "REF", value_parser = cache_ref)]
    pub cache_from: Option<CacheRef>,
    /// Export the registry cache to REF (`REF` or `type=registry,ref=REF[,mode=max]`)
    /// instead of `<repository>:buildcache`.
    #[arg(long, value_name = "REF", value_parser = cache_ref)]
    pub cache_to: Option<CacheRef>,
    /// Do not export the registry cache (it is still imported).
    #[arg(long)]
    pub no_cache_export: bool,
}

fn builder_host(given: &str) -> Result<String, String> {
    BuilderHost::parse(given)
        .map(|_| given.to_string())
        .map_err(|e| e.to_string())
}

fn cache_ref(given: &str) -> Result<CacheRef, String> {
    CacheRef::parse(given).map_err(|e| e.to_string())
}

impl RemoteFlags {
    /// Where the builder's address comes from, for `plan`: the flag, the variable or the
    /// defaults file.
    pub fn source(&self, defaults: &Defaults) -> Option<String> {
        let env = std::env::var(host::BUILDKIT_HOST_ENV).ok();
        if !self.builder_host.is_empty() {
            Some("--builder-host".into())
        } else if env.is_some_and(|v| !v.trim().is_empty()) {
            Some(host::BUILDKIT_HOST_ENV.into())
        } else if let Some(s) = &defaults.values.buildkit_hosts {
            Some(format!(
                "buildkit_hosts at {}:{}",
                s.at.file().display(),
                s.at.pos()
            ))
        } else {
            defaults
                .values
                .buildkit_host
                .as_ref()
                .map(|s| format!("buildkit_host at {}:{}", s.at.file().display(), s.at.pos()))
        }
    }

    /// The remote builder chosen (`None`: dockerd builds), its TLS files from the flags,
    /// else from the defaults file when the address is the file's or the file names no
    /// address (TLS files only: for the builder `BUILDKIT_HOST` names, as a CI pod's
    /// `pyflyte register` is told it).
    pub fn options(&self, defaults: &Defaults) -> Result<Option<RemoteOptions>, Error> {
        let env = std::env::var(host::BUILDKIT_HOST_ENV).ok();
        let values = &defaults.values;
        let file_hosts = values.buildkit_hosts.as_ref().map(|s| s.value.as_slice());
        let file_host = values.buildkit_host.as_ref().map(|s| s.value.as_str());
        let addresses = host::choose_all(&self.builder_host, env.as_deref(), file_hosts, file_host);
        if addresses.is_empty() {
            return Ok(None);
        }
        let parsed = addresses
            .iter()
            .map(|address| BuilderHost::parse(address))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Io {
                context: format!(
                    "the remote builder ({})",
                    self.source(defaults).unwrap_or_default()
                ),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })?;
        let flags = TlsFiles {
            ca: self.tlscacert.clone(),
            cert: self.tlscert.clone(),
            key: self.tlskey.clone(),
            server_name: self.tlsservername.clone(),
        };
        // The file's TLS files: its addresses were chosen, or it names none.
        let chosen_file =
            self.builder_host.is_empty() && env.as_deref().is_none_or(|e| e.trim().is_empty());
        let from_file = chosen_file || (file_hosts.is_none() && file_host.is_none());
        let tls = if flags.any() || !from_file {
            flags
        } else {
            let t = &defaults.values.buildkit_tls;
            TlsFiles {
                ca: t.ca.as_ref().map(|s| s.value.clone()),
                cert: t.cert.as_ref().map(|s| s.value.clone()),
                key: t.key.as_ref().map(|s| s.value.clone()),
                server_name: t.server_name.as_ref().map(|s| s.value.clone()),
            }
        };
        Ok(Some(RemoteOptions {
            hosts: parsed
                .into_iter()
                .map(|h| h.with_tls(tls.clone()))
                .collect(),
            cache: CacheChoice {
                from: self.cache_from.clone(),
                to: self.cache_to.clone(),
                export: !self.no_cache_export,
            },
            load: Default::default(),
        }))
    }
}
