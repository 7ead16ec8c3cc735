//! BuildKit progress for builds run through bollard's Moby driver.
//!
//! bollard 0.21's gRPC build path (`Moby` + `Build::docker_build`) gives secrets, cache
//! mounts and the built-in Dockerfile frontend, but returns no progress: its gRPC connector
//! and `Driver` trait are crate-private. It does accept the build's [`BuildRef`]. So we
//! open a second HTTP connection to dockerd, upgrade `POST /grpc` to h2c ourselves (what
//! `docker buildx` does with its docker driver) and call BuildKit's `Control.Status` for
//! that ref: the same vertex and log stream `docker build` shows. Both talk to the same
//! embedded BuildKit, so nothing is emulated.

use bollard_buildkit_proto::moby::buildkit::v1::{
    StatusRequest, StatusResponse, control_client::ControlClient,
};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Where dockerd listens, from `DOCKER_HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAddress {
    Unix(String),
    Tcp(String),
}

impl DaemonAddress {
    /// Parses `unix:///path` or `tcp://host:port` (the forms `DOCKER_HOST` takes here).
    pub fn parse(host: &str) -> Option<DaemonAddress> {
        if let Some(path) = host.strip_prefix("unix://") {
            Some(DaemonAddress::Unix(path.to_string()))
        } else if let Some(addr) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            Some(DaemonAddress::Tcp(addr.trim_end_matches('/').to_string()))
        } else if host.starts_with('/') {
            Some(DaemonAddress::Unix(host.to_string()))
        } else {
            None
        }
    }
}

/// A unix or TCP stream, for tonic.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Stream {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Opens a connection to dockerd and upgrades `POST <path>` to h2c (`/grpc`: BuildKit's
/// API; `/session`: a BuildKit session we serve), with `headers`. dockerd answers an
/// upgrade at once: connecting and its answer are bounded by `within` (the connect timeout).
pub(crate) async fn upgraded(
    address: DaemonAddress,
    path: &str,
    headers: &[(&str, String)],
    within: Duration,
) -> std::io::Result<TokioIo<Stream>> {
    tokio::time::timeout(within, upgrade(address, path, headers))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer to POST {path} within {} (--connect-timeout / {})",
                    crate::timeouts::seconds(within),
                    crate::timeouts::CONNECT_TIMEOUT_ENV
                ),
            ))
        })
}

async fn upgrade(
    address: DaemonAddress,
    path: &str,
    headers: &[(&str, String)],
) -> std::io::Result<TokioIo<Stream>> {
    let mut stream = match &address {
        DaemonAddress::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        DaemonAddress::Tcp(addr) => Stream::Tcp(TcpStream::connect(addr).await?),
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    // Read the response head byte by byte: after it, the stream is HTTP/2 and must not be
    // read ahead of.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other(format!(
                "dockerd closed the {path} upgrade"
            )));
        }
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head);
    if !status.starts_with("HTTP/1.1 101") {
        return Err(std::io::Error::other(format!(
            "dockerd refused the {path} upgrade: {}",
            status.lines().next().unwrap_or("")
        )));
    }
    Ok(TokioIo::new(stream))
}

/// Why BuildKit's status was not followed to the end.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No gRPC channel to BuildKit (tonic's "transport error", with the cause that says
    /// what happened).
    #[error("{}", with_causes(source))]
    Connect {
        #[source]
        source: tonic::transport::Error,
    },
    /// BuildKit's answer to `Control.Status` (its message).
    #[error("{}", .0.message())]
    Status(#[source] Box<tonic::Status>),
}

impl From<tonic::Status> for StatusError {
    fn from(status: tonic::Status) -> StatusError {
        StatusError::Status(Box::new(status))
    }
}

/// A gRPC channel to dockerd's BuildKit (`POST /grpc`, upgraded).
pub(crate) async fn control_channel(
    address: DaemonAddress,
    within: Duration,
) -> Result<tonic::transport::Channel, StatusError> {
    let connect = |source| StatusError::Connect { source };
    tonic::transport::Endpoint::try_from("http://[::]:50051")
        .map_err(connect)?
        .connect_with_connector(tower::service_fn(move |_| {
            upgraded(address.clone(), "/grpc", &[], within)
        }))
        .await
        .map_err(connect)
}

/// Streams `Control.Status` for build `build_ref` into `on_status` until the build ends.
pub async fn follow(
    address: DaemonAddress,
    build_ref: String,
    timeouts: crate::timeouts::Timeouts,
    mut on_status: impl FnMut(StatusResponse),
) -> Result<(), StatusError> {
    let mut client = ControlClient::new(control_channel(address, timeouts.connect).await?);
    // Status waits for the build to appear, so it may be asked before Solve starts.
    let mut stream = client
        .status(StatusRequest { r#ref: build_ref })
        .await?
        .into_inner();
    while let Some(message) = stream.next().await {
        on_status(message?);
    }
    Ok(())
}

/// tonic's "transport error" with the cause that says what happened.
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
