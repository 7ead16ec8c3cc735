//! The connections to a remote buildkitd: the gRPC channel of its `Control` API (over TCP,
//! with TLS as buildctl makes it, or a unix socket), and the build's session carried inside
//! `Control.Session` (BuildKit's grpchijack, `session/grpchijack/dial.go`): the client opens
//! that bidirectional stream with the session's headers as gRPC metadata, and the bytes of
//! its messages are one HTTP/2 connection on which buildkitd is the client and we serve the
//! session's services ([`crate::builders::session::SessionServices`], the same as on
//! dockerd's `/session`).

use super::host::{BuilderHost, Endpoint, TlsFiles};
use bollard_buildkit_proto::moby::buildkit::v1::{BytesMessage, control_client::ControlClient};
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// Why the builder could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS file could not be read or holds no certificate or key.
    #[error("{what} {}: {detail}", path.display())]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        detail: String,
    },
    /// The TLS client configuration was refused (a key that does not match the certificate).
    #[error("TLS client configuration: {0}")]
    TlsConfig(#[source] rustls::Error),
    /// No connection within the connect timeout.
    #[error("no connection within {}", crate::timeouts::seconds(*.0))]
    TimedOut(Duration),
    /// tonic's transport error, with its causes.
    #[error("{}", crate::builders::buildkit_status::with_causes(.0))]
    Transport(#[source] tonic::transport::Error),
}

/// Reads a PEM file's certificates.
fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConnectError> {
    use rustls::pki_types::pem::PemObject;
    let failed = |detail: String| ConnectError::TlsFile {
        what,
        path: path.to_path_buf(),
        detail,
    };
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certs.is_empty() {
        return Err(failed("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The rustls client configuration of `files`: their CA (else the system's roots), their
/// client certificate, ALPN `h2` (gRPC servers refuse TLS without it).
fn tls_config(files: &TlsFiles) -> Result<rustls::ClientConfig, ConnectError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca {
        Some(ca) => {
            for cert in certificates("--tlscacert", ca)? {
                roots.add(cert).map_err(ConnectError::TlsConfig)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConnectError::TlsConfig)?
        .with_root_certificates(roots);
    let mut config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("--tlscert", cert)?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| {
                ConnectError::TlsFile {
                    what: "--tlskey",
                    path: key.clone(),
                    detail: e.to_string(),
                }
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(ConnectError::TlsConfig)?
        }
        (Some(path), None) | (None, Some(path)) => {
            return Err(ConnectError::TlsFile {
                what: "--tlscert/--tlskey",
                path: path.clone(),
                detail: "a client certificate needs both --tlscert and --tlskey".into(),
            });
        }
        (None, None) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A byte stream to the builder: TCP, TCP with TLS, or a unix socket.
type BoxedIo = Box<dyn Io>;
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Opens one connection to `host` (TLS handshake included).
async fn open(
    host: &BuilderHost,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> std::io::Result<TokioIo<BoxedIo>> {
    let io: BoxedIo = match (&host.endpoint, tls) {
        (Endpoint::Unix(path), _) => Box::new(tokio::net::UnixStream::connect(path).await?),
        (Endpoint::Tcp { host: name, port }, None) => {
            Box::new(tokio::net::TcpStream::connect((name.as_str(), *port)).await?)
        }
        (Endpoint::Tcp { host: name, port }, Some(config)) => {
            let tcp = tokio::net::TcpStream::connect((name.as_str(), *port)).await?;
            let server = host.server_name().unwrap_or_else(|| name.clone());
            let server = rustls::pki_types::ServerName::try_from(server)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let tls = connector.connect(server, tcp).await?;
            if host.tls.as_ref().is_some_and(|f| f.cert.is_some()) {
                Box::new(first_answer(tls).await?)
            } else {
                Box::new(tls)
            }
        }
    };
    Ok(TokioIo::new(io))
}

/// How long a connection with a client certificate waits for the builder's first bytes.
const FIRST_ANSWER: Duration = Duration::from_secs(3);

/// `tls` once the builder has said something, its bytes kept for the gRPC client. In TLS 1.3
/// the server checks a client certificate after the client's handshake is over and answers a
/// refused one with an alert: read here, it is the TLS error it is; read later, the first
/// request fails as a bare broken pipe. gRPC servers send their HTTP/2 settings at once; a
/// server that waits for ours instead costs [`FIRST_ANSWER`], then the connection goes on.
async fn first_answer<T>(tls: T) -> std::io::Result<tokio::io::BufReader<T>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut buffered = tokio::io::BufReader::new(tls);
    if let Ok(read) = tokio::time::timeout(FIRST_ANSWER, buffered.fill_buf()).await
        && read?.is_empty()
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the builder closed the connection after the TLS handshake \
             (its CA may not have signed our client certificate)",
        ));
    }
    Ok(buffered)
}

/// A gRPC channel to `host`'s `Control` API, connected within `within`.
pub async fn control(host: &BuilderHost, within: Duration) -> Result<Channel, ConnectError> {
    let tls = host.tls.as_ref().map(tls_config).transpose()?.map(Arc::new);
    let host = host.clone();
    let endpoint = tonic::transport::Endpoint::from_static("http://buildkitd")
        .connect_timeout(within)
        // A build's status may say nothing for long: keep the connection alive meanwhile.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let connecting = endpoint.connect_with_connector(tower::service_fn(move |_| {
        let (host, tls) = (host.clone(), tls.clone());
        async move { open(&host, tls).await }
    }));
    tokio::time::timeout(within, connecting)
        .await
        .map_err(|_| ConnectError::TimedOut(within))?
        .map_err(ConnectError::Transport)
}

/// The size of one message of session bytes.
const SESSION_CHUNK: usize = 32 * 1024;

/// Opens `Control.Session` with `headers` (the session's id and methods) and returns our
/// end of its byte stream: serve the session's services on it. Two tasks carry the bytes
/// between the gRPC messages and that end; they stop when either side closes.
pub fn hijack(
    mut client: ControlClient<Channel>,
    headers: &[(&'static str, String)],
) -> tokio::io::DuplexStream {
    let (ours, theirs) = tokio::io::duplex(4 * SESSION_CHUNK);
    let (mut read_theirs, mut write_theirs) = tokio::io::split(theirs);
    let (tx, rx) = tokio::sync::mpsc::channel::<BytesMessage>(4);
    let outgoing = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|message| (message, rx))
    });
    let mut request = tonic::Request::new(outgoing);
    for (name, value) in headers {
        // gRPC metadata keys are lower case (grpchijack's `lowerHeaders`); the methods
        // header repeats.
        let key = tonic::metadata::MetadataKey::from_bytes(name.to_lowercase().as_bytes());
        if let (Ok(key), Ok(value)) = (key, value.parse()) {
            request.metadata_mut().append(key, value);
        }
    }
    tokio::spawn(async move {
        let mut buf = vec![0u8; SESSION_CHUNK];
        loop {
            match read_theirs.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let message = BytesMessage {
                        data: buf[..n].to_vec(),
                    };
                    if tx.send(message).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let Ok(response) = client.session(request).await else {
            return;
        };
        let mut incoming = response.into_inner();
        while let Ok(Some(message)) = incoming.message().await {
            if write_theirs.write_all(&message.data).await.is_err() {
                break;
            }
        }
        let _ = write_theirs.shutdown().await;
    });
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tls_file_is_named_with_its_flag() {
        let files = TlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = tls_config(&files).unwrap_err().to_string();
        assert!(e.starts_with("--tlscacert /nonexistent/ca.pem: "), "{e}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "").unwrap();
        let files = TlsFiles {
            cert: Some(cert),
            ..Default::default()
        };
        let e = tls_config(&files).unwrap_err().to_string();
        assert!(e.contains("needs both --tlscert and --tlskey"), "{e}");
    }
}
