//! Bodies of registry and token-server answers, read with a bound.
//!
//! A registry or token server named by a spec can answer with a body of any size, or one
//! that never ends (chunked, forever). reqwest's `bytes()`/`text()` would hold it all, until
//! the process aborts on a failed allocation. Every body imagespec reads whole goes through
//! [`read_limited`] (refused past its bound: a manifest, a config, a tag list, a token) or
//! [`read_prefix`] (cut at its bound: an error's text, only shown).

use crate::timeouts::Activity;

/// What an error answer's body may add to a message (it is cut there, not refused).
pub const ERROR_BODY_LIMIT: usize = 64 << 10;

/// The largest token-server answer read (a JWT is a few KiB).
pub const TOKEN_LIMIT: u64 = 1 << 20;

/// The largest tag-list page read (1000 tags of up to 128 characters is 130 KiB).
pub const TAGS_LIMIT: u64 = 4 << 20;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the bound (said by `Content-Length`, or found while reading).
    #[error("the answer is larger than {}", crate::oci::manifest::size(*limit))]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// The whole body of `response`, or [`BodyError::TooLarge`] as soon as it is known to pass
/// `limit` bytes: memory stays within `limit` whatever the server sends. Each chunk
/// touches `activity` (the stall watchdog's sign of life).
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
    activity: Option<&Activity>,
) -> Result<bytes::Bytes, BodyError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if let Some(activity) = activity {
            activity.touch();
        }
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// At most the first [`ERROR_BODY_LIMIT`] bytes of `response`'s body (the rest is never
/// read), as text; empty when it cannot be read.
pub async fn read_prefix(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(ERROR_BODY_LIMIT);
    String::from_utf8_lossy(&body).into_owned()
}

/// `text` as one short line for a message: control characters escaped, then cut to 200
/// characters (an error body is the server's, and may hold anything).
pub fn one_line(text: &str) -> String {
    crate::oci::digest::escaped(text.trim(), 200)
}
