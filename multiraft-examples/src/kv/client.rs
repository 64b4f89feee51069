//! An HTTP client of the kv service that sorts every outcome into took effect, definitely
//! did not, or unknown: what a load generator counts and a linearizability check needs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a request did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// It definitely had no effect: the server refused it before acting (no leader, busy,
    /// not reachable, a read that failed), with the server's reason.
    Definite(String),
    /// It may or may not have taken effect: the connection broke or timed out after the
    /// request was sent, or the server reported an indeterminate outcome.
    Indeterminate(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Definite(m) => write!(f, "failed: {m}"),
            ClientError::Indeterminate(m) => write!(f, "indeterminate: {m}"),
        }
    }
}

/// A failed request's JSON body, as the server sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code: `not_leader`, `no_leader`, `busy`, `indeterminate`, ...
    pub error: String,
    /// A readable reason.
    pub message: String,
    /// Whether the request definitely had no effect.
    pub definite: bool,
    /// The leader's node id, when known and relevant.
    #[serde(default)]
    pub leader: Option<u64>,
    /// The leader's HTTP address, when known and relevant: retry there.
    #[serde(default)]
    pub leader_url: Option<String>,
}

/// A compare-and-set request body: `expected` and `new` are UTF-8 values, `null` for an
/// absent key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasBody {
    /// The value the key must hold (`null`: absent).
    pub expected: Option<String>,
    /// The value to leave (`null`: remove the key).
    pub new: Option<String>,
}

/// A write's JSON answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBody {
    /// Whether the write took effect (`false`: a compare-and-set found another value).
    pub ok: bool,
    /// The value before the write, when it took effect.
    #[serde(default)]
    pub previous: Option<String>,
    /// The value found, when a compare-and-set did not match.
    #[serde(default)]
    pub current: Option<String>,
}

/// A client of one kv node.
#[derive(Clone, Debug)]
pub struct KvClient {
    http: reqwest::Client,
    base: String,
}

impl KvClient {
    /// A client of the node serving HTTP at `base` (`http://host:port`), giving up on a
    /// request after `timeout`.
    pub fn new(base: impl Into<String>, timeout: Duration) -> Result<KvClient, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(KvClient {
            http,
            base: base.into().trim_end_matches('/').to_string(),
        })
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `key`, `/kv/{key}` then `suffix` if any, the key percent-encoded as one
    /// path segment. Formatted raw, the URL parser resolved the key: `x/../y` wrote `y`,
    /// `a?b` wrote `a`, and `..` read the status page (review). An empty key, `.` and
    /// `..`, which no URL can name as a segment, are refused.
    fn url(&self, key: &str, suffix: Option<&str>) -> Result<reqwest::Url, ClientError> {
        if matches!(key, "" | "." | "..") {
            return Err(ClientError::Definite(format!(
                "the key {key:?} cannot be named in a URL"
            )));
        }
        let mut url =
            reqwest::Url::parse(&self.base).map_err(|e| ClientError::Definite(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Definite(format!("{} is no base URL", self.base)))?
            .pop_if_empty()
            .push("kv")
            .push(key)
            .extend(suffix);
        Ok(url)
    }

    /// Sets `key` to `value`; returns the value before.
    pub async fn put(&self, key: &str, value: &str) -> Result<Option<String>, ClientError> {
        let request = self.http.put(self.url(key, None)?).body(value.to_string());
        let body: WriteBody = send(request).await?;
        Ok(body.previous)
    }

    /// Removes `key`; returns the value before.
    pub async fn delete(&self, key: &str) -> Result<Option<String>, ClientError> {
        let body: WriteBody = send(self.http.delete(self.url(key, None)?)).await?;
        Ok(body.previous)
    }

    /// Sets `key` to `new` if it holds `expected`: `Ok(Ok(()))` if it did, `Ok(Err(current))`
    /// with the value found if not.
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<Result<(), Option<String>>, ClientError> {
        let cas = CasBody {
            expected: expected.map(str::to_string),
            new: new.map(str::to_string),
        };
        let request = self.http.post(self.url(key, Some("cas"))?).json(&cas);
        let body: WriteBody = send(request).await?;
        Ok(if body.ok { Ok(()) } else { Err(body.current) })
    }

    /// Reads `key` linearizably (the server's default read); `None` if absent. A read
    /// changes nothing, so every failure of it is definite.
    pub async fn get(&self, key: &str) -> Result<Option<String>, ClientError> {
        let response = self
            .http
            .get(self.url(key, None)?)
            .send()
            .await
            .map_err(|e| ClientError::Definite(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Definite(e.to_string()))?;
        // Only "no such key" means absent; a node without the key's group also answers
        // 4xx, and that is a failed read, not an empty key.
        let absent =
            || serde_json::from_str::<ErrorBody>(&text).is_ok_and(|b| b.error == "not_found");
        match status.as_u16() {
            200 => Ok(Some(text)),
            404 if absent() => Ok(None),
            _ => Err(ClientError::Definite(error_message(&text))),
        }
    }
}

/// Sends a write and sorts its outcome. A connection that could not be made means the
/// request never reached the server (definite); one that broke or timed out later may have
/// carried it (indeterminate).
async fn send(request: reqwest::RequestBuilder) -> Result<WriteBody, ClientError> {
    let response = request.send().await.map_err(|e| {
        if e.is_connect() {
            ClientError::Definite(e.to_string())
        } else {
            ClientError::Indeterminate(e.to_string())
        }
    })?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| ClientError::Indeterminate(e.to_string()))?;
    if status.is_success() || status.as_u16() == 409 {
        return serde_json::from_str(&text)
            .map_err(|e| ClientError::Indeterminate(format!("unreadable answer: {e}")));
    }
    Err(write_failure(status, &text))
}

/// What a write's failed answer (`status`, body `text`) says about its outcome. The
/// server's own errors say whether they are definite. Any other client error (4xx) is the
/// HTTP layer refusing a request it could not parse, before it reached the cluster:
/// definite. Anything else may come from anywhere after the write was taken.
fn write_failure(status: reqwest::StatusCode, text: &str) -> ClientError {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) if body.definite => ClientError::Definite(body.message),
        Ok(body) => ClientError::Indeterminate(body.message),
        Err(_) if status.is_client_error() => {
            ClientError::Definite(format!("HTTP {status}: {text}"))
        }
        Err(_) => ClientError::Indeterminate(format!("HTTP {status}: {text}")),
    }
}

fn error_message(text: &str) -> String {
    serde_json::from_str::<ErrorBody>(text)
        .map(|b| b.message)
        .unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request the HTTP layer could not parse never reached the cluster: definite. A
    /// server error without the server's own body may come after the write: indeterminate.
    #[test]
    fn a_parse_refusal_is_definite_and_a_bare_server_error_is_not() {
        use reqwest::StatusCode;
        let failure = |status, text| write_failure(status, text);
        let unparsable = "Failed to parse the request body as JSON: expected value";
        assert!(matches!(
            failure(StatusCode::UNPROCESSABLE_ENTITY, unparsable),
            ClientError::Definite(m) if m.contains("expected value")
        ));
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, "Invalid URL"),
            ClientError::Definite(_)
        ));
        assert!(matches!(
            failure(StatusCode::BAD_GATEWAY, "upstream went away"),
            ClientError::Indeterminate(_)
        ));
        let own = r#"{"error":"indeterminate","message":"timed out","definite":false}"#;
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, own),
            ClientError::Indeterminate(m) if m == "timed out"
        ));
    }

    /// A key is one path segment, whatever it holds; the names no URL can hold are refused.
    #[test]
    fn a_key_is_one_path_segment() {
        let client = KvClient::new("http://127.0.0.1:1/", Duration::from_secs(1)).unwrap();
        let path = |key| client.url(key, None).map(|u| u.path().to_string());
        assert_eq!(path("plain"), Ok("/kv/plain".to_string()));
        assert_eq!(path("x/../y"), Ok("/kv/x%2F..%2Fy".to_string()));
        assert_eq!(path("a?b#c"), Ok("/kv/a%3Fb%23c".to_string()));
        assert_eq!(path("%41"), Ok("/kv/%2541".to_string()));
        let cas = client.url("a/b", Some("cas")).unwrap();
        assert_eq!(cas.path(), "/kv/a%2Fb/cas");
        for key in ["", ".", ".."] {
            assert!(
                matches!(path(key), Err(ClientError::Definite(_))),
                "{key:?}"
            );
        }
    }
}
