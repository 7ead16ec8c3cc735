//! Identity tokens: the OAuth2 refresh-token grant of distribution's token spec, which
//! oci-client does not do (it sends `RegistryAuth::Basic` as basic auth to the token
//! endpoint, which an OAuth registry refuses, and takes a `Bearer` as the registry token
//! itself). docker, containerd and skopeo exchange an identity token (`identitytoken` in
//! `auths`, or a helper's `Username: "<token>"`) for an access token with a `POST` of
//! `grant_type=refresh_token` to the realm the registry's challenge names; this module does
//! that, and [`super::client`] hands oci-client the access token as a `Bearer`.

use std::time::Duration;

/// What a registry's `401` names: where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
}

/// The `Bearer` challenge of a `WWW-Authenticate` header, if it has one.
pub fn bearer_challenge(header: &str) -> Option<Challenge> {
    let challenges = http_auth::parse_challenges(header).ok()?;
    let bearer = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    let param = |name: &str| {
        bearer
            .params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_unescaped())
    };
    Some(Challenge {
        realm: param("realm")?,
        service: param("service"),
    })
}

/// An access token and how long it lives.
pub struct AccessToken {
    pub token: String,
    pub expires_in: Duration,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken(<redacted>, {:?})", self.expires_in)
    }
}

/// The token endpoint's answer (`access_token` in OAuth2, `token` in docker's GET flow).
#[derive(serde::Deserialize)]
struct TokenReply {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The spec's default lifetime of a token that does not say.
const DEFAULT_EXPIRES_IN: u64 = 60;

/// The form of the refresh-token grant (distribution's "OAuth2 token" spec), scopes
/// space-separated in one `scope`.
pub fn refresh_form(
    challenge: &Challenge,
    scopes: &[String],
    refresh_token: &str,
) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.to_string()),
        ("client_id", "imagespec".to_string()),
        ("scope", scopes.join(" ")),
    ];
    if let Some(service) = &challenge.service {
        form.push(("service", service.clone()));
    }
    form
}

/// Exchanges `refresh_token` for an access token covering `scopes`. The error says why in
/// words (the token server's own message when it gives one), never with a token.
pub async fn exchange(
    http: &reqwest::Client,
    challenge: &Challenge,
    scopes: &[String],
    refresh_token: &str,
) -> Result<AccessToken, TokenError> {
    let request = http
        .post(&challenge.realm)
        .form(&refresh_form(challenge, scopes, refresh_token));
    // OAuth2's answer names it `access_token`; docker's `token`.
    token_answer(request, &challenge.realm, Flow::OAuth).await
}

/// Which token flow asked: the answer's field read first, and how a refusal is said.
#[derive(Clone, Copy)]
enum Flow {
    /// OAuth2 (`POST`, a refresh token): `access_token`.
    OAuth,
    /// docker's `GET`: `token`.
    Docker,
}

/// Why no token came: the whole line for a user, and the token server's own words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    pub message: String,
    /// The server's message (`errors[0].message`, `error_description`), when it gave one.
    pub said: Option<String>,
    /// The token server answered with a refusal (not a failure to reach or read it).
    pub refused: bool,
}

impl TokenError {
    /// A failure to get an answer, or to read one: not the server's refusal.
    pub fn new(message: String) -> TokenError {
        TokenError {
            message,
            said: None,
            refused: false,
        }
    }
}

/// Sends `request` to the token endpoint `realm` and reads its answer (at most
/// [`super::body::TOKEN_LIMIT`] of it: the realm is named by the registry's challenge).
async fn token_answer(
    request: reqwest::RequestBuilder,
    realm: &str,
    flow: Flow,
) -> Result<AccessToken, TokenError> {
    let failed =
        |e: &dyn std::fmt::Display| TokenError::new(format!("token endpoint {realm}: {e}"));
    let response = request.send().await.map_err(|e| failed(&e))?;
    let status = response.status();
    if !status.is_success() {
        let body = super::body::read_prefix(response).await;
        let said = server_message(body.as_bytes());
        let words = said.as_ref().map_or(String::new(), |m| format!(": {m}"));
        let message = match flow {
            Flow::OAuth => format!("the identity token was refused by {realm} ({status}{words})"),
            Flow::Docker => format!("the token server {realm} refused ({status}{words})"),
        };
        return Err(TokenError {
            message,
            said,
            refused: true,
        });
    }
    let body = super::body::read_limited(response, super::body::TOKEN_LIMIT, None)
        .await
        .map_err(|e| failed(&e))?;
    let reply: TokenReply = serde_json::from_slice(&body)
        .map_err(|_| TokenError::new(format!("token endpoint {realm}: not a token answer")))?;
    let token = match flow {
        Flow::OAuth => reply.access_token.or(reply.token),
        Flow::Docker => reply.token.or(reply.access_token),
    };
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
        TokenError::new(format!("token endpoint {realm}: the answer has no token"))
    })?;
    if !usable_in_a_header(&token) {
        return Err(TokenError::new(format!(
            "token endpoint {realm}: the token is not one an Authorization header can carry \
             (control characters or spaces)"
        )));
    }
    Ok(AccessToken {
        token,
        expires_in: Duration::from_secs(reply.expires_in.unwrap_or(DEFAULT_EXPIRES_IN).max(1)),
    })
}

/// Whether `token` can go into `Authorization: Bearer <token>` as it is: visible ASCII
/// only. oci-client puts it into a header value unchecked (and panics on one that is not),
/// and a token with a line break in it would be a header of its own.
fn usable_in_a_header(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_graphic())
}

/// A token for `scopes` from the realm by docker's `GET` flow (basic auth with a username
/// and password, or none): what oci-client does for pulls and pushes, needed here for the
/// `delete` action it never asks for.
pub async fn fetch(
    http: &reqwest::Client,
    challenge: &Challenge,
    scopes: &[String],
    basic: Option<(&str, &str)>,
) -> Result<AccessToken, TokenError> {
    let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
    if let Some(service) = &challenge.service {
        query.push(("service", service));
    }
    let mut request = http.get(&challenge.realm).query(&query);
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    token_answer(request, &challenge.realm, Flow::Docker).await
}

/// The first message of an error answer (distribution's `errors[].message`, OAuth2's
/// `error_description`/`error`), one line, bounded.
fn server_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = v["errors"][0]["message"]
        .as_str()
        .or(v["error_description"].as_str())
        .or(v["error"].as_str())?;
    Some(super::body::one_line(message.lines().next().unwrap_or("")))
}

/// How long before its end a token is replaced: half its life, at most 30 s (a request
/// started just before the end must not arrive with a dead token).
pub fn refresh_margin(expires_in: Duration) -> Duration {
    (expires_in / 2).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_name_the_realm_and_service() {
        assert_eq!(
            bearer_challenge(
                r#"Bearer realm="http://127.0.0.1:5003/token",service="svc",scope="repository:a:pull""#
            ),
            Some(Challenge {
                realm: "http://127.0.0.1:5003/token".into(),
                service: Some("svc".into()),
            })
        );
        assert_eq!(bearer_challenge(r#"Basic realm="x""#), None);
    }

    #[test]
    fn the_refresh_grant_is_the_oauth2_form() {
        let c = Challenge {
            realm: "r".into(),
            service: Some("svc".into()),
        };
        let form = refresh_form(
            &c,
            &["repository:a:pull".into(), "repository:b:pull,push".into()],
            "idt",
        );
        assert!(form.contains(&("grant_type", "refresh_token".into())));
        assert!(form.contains(&("refresh_token", "idt".into())));
        assert!(form.contains(&("service", "svc".into())));
        assert!(form.contains(&("scope", "repository:a:pull repository:b:pull,push".into())));
    }

    #[test]
    fn only_tokens_a_header_can_carry_are_taken() {
        assert!(usable_in_a_header("eyJhbGciOiJSUzI1NiJ9.e30.c2ln-_~+/="));
        for bad in ["a\nb", "a\r\nX-Evil: 1", "a b", "tab\t", "é", "\u{7f}"] {
            assert!(!usable_in_a_header(bad), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_replaced_before_they_end() {
        assert_eq!(
            refresh_margin(Duration::from_secs(5)),
            Duration::from_millis(2500)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            server_message(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"unknown refresh token"}]}"#
            )
            .as_deref(),
            Some("unknown refresh token")
        );
    }
}
