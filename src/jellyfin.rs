//! The Jellyfin API client: resolves an item id (what the Webhook plugin sends) to the file path
//! of the film (what the pipeline needs).
//!
//! One request: `GET {base}/Items?ids={id}&fields=Path,MediaSources` with the header
//! `Authorization: MediaBrowser Token="{api_key}"`. The answer is a `BaseItemDtoQueryResult`:
//! `{"Items":[{"Id","Name","Path","Type","MediaSources":[{"Path",…}],…}],"TotalRecordCount":N}`.
//!
//! Blocking (ureq), with a 5 s timeout: the daemon calls [`JellyfinClient::resolve_item`] inside
//! `tokio::task::spawn_blocking`. This build has no TLS, so only `http://` URLs are accepted.
//! The API key never appears in logs, errors or `Debug` output.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::base_url::base_url;

/// How long one request to Jellyfin may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything but `A-Za-z0-9` and `-` is encoded in the query (ids are checked first anyway).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-');

/// Why a string is not a Jellyfin item id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemIdError {
    #[error("it is empty")]
    Empty,
    #[error("it contains {found:?}; a GUID holds only hex digits and hyphens")]
    BadChar { found: char },
    #[error(
        "Jellyfin's item ids are GUIDs, 32 hex digits or 36 with hyphens (8-4-4-4-12); this one \
         is {len} characters long"
    )]
    NotGuid { len: usize },
}

/// Checks that `id` is a GUID as Jellyfin writes item ids: 32 hex digits (its API's form), or
/// 36 with hyphens (the Webhook plugin's `{{ItemId}}`: `dataObject["ItemId"] = item.Id`, a `Guid`
/// that Handlebars prints in its default form; `Helpers/DataObjectHelpers.cs` line 59).
pub fn check_item_id(id: &str) -> Result<(), ItemIdError> {
    if id.is_empty() {
        return Err(ItemIdError::Empty);
    }
    if let Some(found) = id.chars().find(|&c| !(c.is_ascii_hexdigit() || c == '-')) {
        return Err(ItemIdError::BadChar { found });
    }
    let hyphens: Vec<usize> = id.match_indices('-').map(|(at, _)| at).collect();
    let guid = match id.len() {
        32 => hyphens.is_empty(),
        36 => hyphens == [8, 13, 18, 23],
        _ => false,
    };
    if guid {
        Ok(())
    } else {
        Err(ItemIdError::NotGuid { len: id.len() })
    }
}

/// A Jellyfin library item, as far as liveup cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JellyfinItem {
    /// The id as Jellyfin spells it in its answer (32 hex digits, no hyphens).
    pub id: String,
    pub name: Option<String>,
    /// The media file, absolute, as Jellyfin sees it (not canonicalised, not checked against
    /// media roots).
    pub path: PathBuf,
    /// `Movie`, `Episode`, …
    pub item_type: Option<String>,
}

/// Everything that can go wrong talking to Jellyfin. Each message is one line and names what to
/// fix; none contains the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JellyfinError {
    #[error(
        "the TLS connection to Jellyfin at {url} failed: {reason}; a certificate from a CA of \
         your own must be trusted on this machine (add it to /usr/local/share/ca-certificates \
         and run update-ca-certificates, or point SSL_CERT_FILE at it)"
    )]
    Tls { url: String, reason: String },
    #[error("Jellyfin URL {url:?} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the Jellyfin API key {reason}")]
    InvalidApiKey { reason: &'static str },
    #[error("{item_id:?} is not a valid Jellyfin item id: {reason}")]
    InvalidItemId {
        item_id: String,
        reason: ItemIdError,
    },
    #[error("cannot reach Jellyfin at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Jellyfin at {url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: f64 },
    #[error(
        "Jellyfin at {url} refused the API key (HTTP {status}); create one in Dashboard → API Keys \
         and put it in the configuration"
    )]
    Unauthorized { url: String, status: u16 },
    #[error(
        "Jellyfin at {url} answered HTTP {status}, a redirect to {location:?}; configure the URL \
         it points to"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    #[error("Jellyfin at {url} answered HTTP {status}{body}")]
    Status {
        url: String,
        status: u16,
        /// ": " and the start of the body, on one line, or nothing.
        body: String,
    },
    #[error("Jellyfin has no item {item_id} (or the API key cannot see it)")]
    NotFound { item_id: String },
    #[error("Jellyfin answered the request for item {item_id} with other items ({got})")]
    WrongItem { item_id: String, got: String },
    #[error(
        "Jellyfin item {item_id} ({description}) has no file path: not a film file (a series, \
         season or folder?)"
    )]
    NoPath {
        item_id: String,
        description: String,
    },
    #[error("Jellyfin item {item_id} has the path {path:?}, which is not an absolute local path")]
    NotLocalPath { item_id: String, path: String },
    #[error("Jellyfin at {url} answered something that is not the expected JSON: {reason}")]
    BadJson { url: String, reason: String },
}

impl JellyfinError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            JellyfinError::Tls { .. } => "jellyfin_tls",
            JellyfinError::InvalidUrl { .. } => "jellyfin_invalid_url",
            JellyfinError::InvalidApiKey { .. } => "jellyfin_invalid_api_key",
            JellyfinError::InvalidItemId { .. } => "bad_item_id",
            JellyfinError::Unreachable { .. } => "jellyfin_unreachable",
            JellyfinError::Timeout { .. } => "jellyfin_timeout",
            JellyfinError::Unauthorized { .. } => "jellyfin_unauthorized",
            JellyfinError::Redirect { .. } => "jellyfin_redirect",
            JellyfinError::Status { .. } => "jellyfin_status",
            JellyfinError::NotFound { .. } => "jellyfin_item_not_found",
            JellyfinError::WrongItem { .. } => "jellyfin_wrong_item",
            JellyfinError::NoPath { .. } => "jellyfin_item_without_path",
            JellyfinError::NotLocalPath { .. } => "jellyfin_item_not_local",
            JellyfinError::BadJson { .. } => "jellyfin_bad_json",
        }
    }

    /// Whether liveup's configuration is the problem (the URL or the API key), which only an
    /// operator can fix: no retry helps.
    pub fn is_configuration_problem(&self) -> bool {
        matches!(
            self,
            JellyfinError::Tls { .. }
                | JellyfinError::InvalidUrl { .. }
                | JellyfinError::InvalidApiKey { .. }
                | JellyfinError::Unauthorized { .. }
                | JellyfinError::Redirect { .. }
        )
    }

    /// Whether the item itself is the problem (unknown, or not a local file) rather than the
    /// link to Jellyfin (configuration, network, server).
    pub fn is_item_problem(&self) -> bool {
        matches!(
            self,
            JellyfinError::InvalidItemId { .. }
                | JellyfinError::NotFound { .. }
                | JellyfinError::NoPath { .. }
                | JellyfinError::NotLocalPath { .. }
        )
    }
}

/// A client for one Jellyfin server. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct JellyfinClient {
    /// `http://host[:port][/base]`, without a trailing slash.
    base_url: String,
    api_key: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl fmt::Debug for JellyfinClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JellyfinClient")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl JellyfinClient {
    /// Checks the URL (`http://` only in this build, no query, no credentials) and the API key.
    /// Makes no request.
    pub fn new(base_url: &str, api_key: &str) -> Result<JellyfinClient, JellyfinError> {
        let base_url = normalise_base_url(base_url)?;
        let api_key = api_key.trim();
        if api_key.is_empty() {
            return Err(JellyfinError::InvalidApiKey {
                reason: "is empty; create one in Jellyfin's Dashboard → API Keys",
            });
        }
        // It goes inside a quoted header value: no quotes, backslashes, spaces or controls.
        if !api_key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(JellyfinError::InvalidApiKey {
                reason: "contains characters other than printable ASCII (or a quote or backslash)",
            });
        }
        Ok(JellyfinClient {
            base_url,
            api_key: api_key.to_string(),
            timeout: DEFAULT_TIMEOUT,
            agent: build_agent(DEFAULT_TIMEOUT),
        })
    }

    /// The same client with another request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> JellyfinClient {
        self.timeout = timeout;
        self.agent = build_agent(timeout);
        self
    }

    /// The normalised base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The request URL for an item (no secret in it: the key travels in a header).
    pub fn item_url(&self, item_id: &str) -> String {
        format!(
            "{}/Items?ids={}&fields=Path,MediaSources",
            self.base_url,
            utf8_percent_encode(item_id, QUERY_VALUE)
        )
    }

    /// Asks Jellyfin for the item and returns its file path: `Path`, else the first
    /// `MediaSources[].Path`. Blocking; call it from `spawn_blocking`.
    pub fn resolve_item(&self, item_id: &str) -> Result<JellyfinItem, JellyfinError> {
        check_item_id(item_id).map_err(|reason| JellyfinError::InvalidItemId {
            item_id: shorten(item_id),
            reason,
        })?;
        let url = self.item_url(item_id);
        tracing::debug!(%url, "asking Jellyfin for an item");
        let response = self
            .agent
            .get(&url)
            .set(
                "Authorization",
                &format!("MediaBrowser Token=\"{}\"", self.api_key),
            )
            .set("Accept", "application/json")
            .call();
        let response = match response {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                return Err(self.status_error(&url, status, response))
            }
            Err(ureq::Error::Transport(transport)) => {
                return Err(self.transport_error(&url, &transport))
            }
        };
        let status = response.status();
        if !(200..300).contains(&status) {
            // Redirects are not followed: they could carry the key elsewhere.
            return Err(self.status_error(&url, status, response));
        }
        let body = response
            .into_string()
            .map_err(|e| self.read_error(&url, e))?;
        let item = self.item_from_body(&url, item_id, &body)?;
        tracing::debug!(item_id, path = ?item.path, "Jellyfin item resolved");
        Ok(item)
    }

    fn item_from_body(
        &self,
        url: &str,
        item_id: &str,
        body: &str,
    ) -> Result<JellyfinItem, JellyfinError> {
        let page: ItemsPage = serde_json::from_str(body).map_err(|e| JellyfinError::BadJson {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let Some(items) = page.items else {
            return Err(JellyfinError::BadJson {
                url: url.to_string(),
                reason: "no \"Items\" array".to_string(),
            });
        };
        if items.is_empty() {
            return Err(JellyfinError::NotFound {
                item_id: item_id.to_string(),
            });
        }
        // Jellyfin writes ids as 32 hex digits; the webhook may have sent them with hyphens.
        let wanted = canonical_id(item_id);
        let Some(item) = items
            .iter()
            .find(|item| item.id.as_deref().map(canonical_id).as_deref() == Some(&wanted))
        else {
            let got: Vec<&str> = items
                .iter()
                .map(|item| item.id.as_deref().unwrap_or("no Id"))
                .take(3)
                .collect();
            return Err(JellyfinError::WrongItem {
                item_id: item_id.to_string(),
                got: got.join(", "),
            });
        };
        let path = non_empty(&item.path).or_else(|| {
            item.media_sources
                .iter()
                .flatten()
                .find_map(|source| non_empty(&source.path))
        });
        let Some(path) = path else {
            let description = match (&item.name, &item.item_type) {
                (Some(name), Some(ty)) => format!("{name:?}, {ty}"),
                (Some(name), None) => format!("{name:?}"),
                (None, Some(ty)) => ty.clone(),
                (None, None) => "no name or type".to_string(),
            };
            return Err(JellyfinError::NoPath {
                item_id: item_id.to_string(),
                description,
            });
        };
        if !Path::new(path).is_absolute() {
            return Err(JellyfinError::NotLocalPath {
                item_id: item_id.to_string(),
                path: shorten(path),
            });
        }
        Ok(JellyfinItem {
            id: item.id.clone().unwrap_or_else(|| item_id.to_string()),
            name: item.name.clone().filter(|name| !name.is_empty()),
            path: PathBuf::from(path),
            item_type: item.item_type.clone().filter(|ty| !ty.is_empty()),
        })
    }

    fn status_error(&self, url: &str, status: u16, response: ureq::Response) -> JellyfinError {
        let url = url.to_string();
        match status {
            401 | 403 => JellyfinError::Unauthorized { url, status },
            300..=399 => JellyfinError::Redirect {
                url,
                status,
                location: shorten(&self.redact(response.header("Location").unwrap_or(""))),
            },
            _ => {
                let mut start = Vec::new();
                // An error page can be large; its first bytes say enough.
                let _ = response.into_reader().take(512).read_to_end(&mut start);
                let text = self.redact(&one_line(&String::from_utf8_lossy(&start)));
                let body = if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", shorten(&text))
                };
                JellyfinError::Status { url, status, body }
            }
        }
    }

    fn transport_error(&self, url: &str, transport: &ureq::Transport) -> JellyfinError {
        let url = url.to_string();
        if is_timeout(transport) {
            return JellyfinError::Timeout {
                url,
                seconds: self.timeout.as_secs_f64(),
            };
        }
        let mut reason = transport.kind().to_string();
        if let Some(message) = transport.message() {
            reason.push_str(": ");
            reason.push_str(message);
        }
        if let Some(source) = std::error::Error::source(transport) {
            reason.push_str(": ");
            reason.push_str(&source.to_string());
        }
        let reason = self.redact(&one_line(&reason));
        if url.starts_with("https://") && is_tls_failure(transport) {
            return JellyfinError::Tls { url, reason };
        }
        match transport.kind() {
            ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
                JellyfinError::InvalidUrl { url, reason }
            }
            _ => JellyfinError::Unreachable { url, reason },
        }
    }

    fn read_error(&self, url: &str, error: std::io::Error) -> JellyfinError {
        let url = url.to_string();
        match error.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                JellyfinError::Timeout {
                    url,
                    seconds: self.timeout.as_secs_f64(),
                }
            }
            std::io::ErrorKind::InvalidData => JellyfinError::BadJson {
                url,
                reason: one_line(&error.to_string()),
            },
            _ => JellyfinError::Unreachable {
                url,
                reason: format!("the connection broke while reading the answer: {error}"),
            },
        }
    }

    /// Belt and braces: no server message echoed into an error may carry the key.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.api_key, "<redacted>")
    }
}

fn build_agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .user_agent(concat!("liveup/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn normalise_base_url(raw: &str) -> Result<String, JellyfinError> {
    let url = raw.trim();
    base_url(url).map_err(|reason| JellyfinError::InvalidUrl {
        url: shorten(url),
        reason,
    })
}

/// rustls reports a failed handshake (an unknown issuer, a wrong name, a server that does not
/// speak TLS) as invalid data on the connection.
fn is_tls_failure(transport: &ureq::Transport) -> bool {
    let mut source = std::error::Error::source(transport);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
        }
        source = error.source();
    }
    false
}

fn is_timeout(transport: &ureq::Transport) -> bool {
    let mut source = std::error::Error::source(transport);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        source = error.source();
    }
    false
}

fn canonical_id(id: &str) -> String {
    id.chars()
        .filter(|&c| c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control())
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn shorten(text: &str) -> String {
    const MAX: usize = 160;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// `BaseItemDtoQueryResult`, reduced to what is read. Unknown fields are ignored; the fields read
/// must have the right type.
#[derive(Deserialize)]
struct ItemsPage {
    #[serde(rename = "Items")]
    items: Option<Vec<ItemDto>>,
}

#[derive(Deserialize)]
struct ItemDto {
    #[serde(rename = "Id")]
    id: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Type")]
    item_type: Option<String>,
    #[serde(rename = "MediaSources")]
    media_sources: Option<Vec<MediaSourceDto>>,
}

#[derive(Deserialize)]
struct MediaSourceDto {
    #[serde(rename = "Path")]
    path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const ID: &str = "6f1b1c5e7a2d4c0f9e8d7c6b5a493827";

    /// What the stub saw of one request.
    #[derive(Debug)]
    struct Seen {
        request_line: String,
        headers: Vec<(String, String)>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A one-shot HTTP server on 127.0.0.1:0: answers one request with `response` (raw bytes,
    /// status line included) and reports what it saw. `None` as response: read the request and
    /// never answer (for the timeout).
    struct Stub {
        base: String,
        seen: mpsc::Receiver<Seen>,
    }

    impl Stub {
        fn start(response: Option<String>) -> Stub {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (tx, seen) = mpsc::channel();
            thread::spawn(move || {
                let (stream, _) = listener.accept().unwrap();
                let seen = read_request(&stream);
                let _ = tx.send(seen);
                let mut stream = stream;
                match response {
                    Some(response) => {
                        let _ = stream.write_all(response.as_bytes());
                        let _ = stream.flush();
                    }
                    None => thread::sleep(Duration::from_secs(3)),
                }
            });
            Stub { base, seen }
        }

        fn json(status: &str, body: &str) -> Stub {
            Stub::start(Some(format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )))
        }

        fn client(&self) -> JellyfinClient {
            JellyfinClient::new(&self.base, KEY).unwrap()
        }

        fn seen(&self) -> Seen {
            self.seen.recv_timeout(Duration::from_secs(5)).unwrap()
        }
    }

    fn read_request(stream: &TcpStream) -> Seen {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        Seen {
            request_line: request_line.trim_end().to_string(),
            headers,
        }
    }

    fn items_json(item: serde_json::Value) -> String {
        serde_json::json!({ "Items": [item], "TotalRecordCount": 1, "StartIndex": 0 }).to_string()
    }

    /// A free port with nothing listening on it.
    fn dead_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn request_path_query_and_authorization() {
        let stub = Stub::json(
            "200 OK",
            &items_json(serde_json::json!({
                "Name": "Big Buck Bunny", "ServerId": "x", "Id": ID, "HasSubtitles": false,
                "Container": "mkv", "Path": "/media/films/Big Buck Bunny (2008).mkv",
                "RunTimeTicks": 5964000000u64, "IsFolder": false, "Type": "Movie",
                "MediaSources": [{"Protocol": "File", "Id": ID,
                    "Path": "/media/films/other.mkv", "Type": "Default"}],
                "LocationType": "FileSystem", "MediaType": "Video"
            })),
        );
        let item = stub.client().resolve_item(ID).unwrap();
        let seen = stub.seen();
        assert_eq!(
            seen.request_line,
            format!("GET /Items?ids={ID}&fields=Path,MediaSources HTTP/1.1")
        );
        assert_eq!(
            seen.header("Authorization"),
            Some(format!("MediaBrowser Token=\"{KEY}\"").as_str())
        );
        assert_eq!(seen.header("Accept"), Some("application/json"));
        assert_eq!(
            item,
            JellyfinItem {
                id: ID.to_string(),
                name: Some("Big Buck Bunny".into()),
                path: PathBuf::from("/media/films/Big Buck Bunny (2008).mkv"),
                item_type: Some("Movie".into()),
            }
        );
    }

    #[test]
    fn base_path_and_trailing_slash() {
        let stub = Stub::json(
            "200 OK",
            &items_json(serde_json::json!({"Id": ID, "Path": "/m/x.mkv"})),
        );
        let client = JellyfinClient::new(&format!("  {}/jellyfin//  ", stub.base), KEY).unwrap();
        assert_eq!(client.base_url(), format!("{}/jellyfin", stub.base));
        client.resolve_item(ID).unwrap();
        assert_eq!(
            stub.seen().request_line,
            format!("GET /jellyfin/Items?ids={ID}&fields=Path,MediaSources HTTP/1.1")
        );
    }

    #[test]
    fn media_sources_path_when_no_path() {
        let stub = Stub::json(
            "200 OK",
            &items_json(serde_json::json!({
                "Id": ID, "Name": "Film", "Type": "Movie", "Path": "",
                "MediaSources": [{"Id": "a"}, {"Path": ""}, {"Path": "/media/Film/part1.mkv"},
                                 {"Path": "/media/Film/part2.mkv"}]
            })),
        );
        let item = stub.client().resolve_item(ID).unwrap();
        assert_eq!(item.path, PathBuf::from("/media/Film/part1.mkv"));
    }

    #[test]
    fn hyphenated_request_id_matches_jellyfin_spelling() {
        let hyphenated = "6f1b1c5e-7a2d-4c0f-9e8d-7c6b5a493827";
        let stub = Stub::json(
            "200 OK",
            &items_json(serde_json::json!({"Id": ID, "Path": "/m/x.mkv", "Type": "Episode"})),
        );
        let item = stub.client().resolve_item(hyphenated).unwrap();
        assert_eq!(item.id, ID);
        assert!(stub
            .seen()
            .request_line
            .contains(&format!("ids={hyphenated}&")));
    }

    #[test]
    fn unauthorized_is_an_auth_error() {
        for status in ["401 Unauthorized", "403 Forbidden"] {
            let stub = Stub::json(status, "");
            let err = stub.client().resolve_item(ID).unwrap_err();
            let code: u16 = status[..3].parse().unwrap();
            assert_eq!(
                err,
                JellyfinError::Unauthorized {
                    url: format!("{}/Items?ids={ID}&fields=Path,MediaSources", stub.base),
                    status: code,
                }
            );
            let msg = err.to_string();
            assert!(msg.contains("refused the API key"), "{msg}");
            assert!(msg.contains(&format!("HTTP {code}")), "{msg}");
            assert!(!msg.contains(KEY), "{msg}");
        }
    }

    #[test]
    fn other_status_with_body_start() {
        let stub = Stub::json("500 Internal Server Error", "Database\nis locked");
        let err = stub.client().resolve_item(ID).unwrap_err();
        assert!(
            matches!(err, JellyfinError::Status { status: 500, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().ends_with("HTTP 500: Database is locked"),
            "{err}"
        );
    }

    #[test]
    fn redirect_is_not_followed() {
        let stub = Stub::start(Some(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://jf.example.org/Items\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string(),
        ));
        let err = stub.client().resolve_item(ID).unwrap_err();
        assert!(
            matches!(err, JellyfinError::Redirect { status: 301, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("https://jf.example.org/Items"),
            "{err}"
        );
    }

    #[test]
    fn empty_items_is_not_found() {
        let stub = Stub::json(
            "200 OK",
            r#"{"Items":[],"TotalRecordCount":0,"StartIndex":0}"#,
        );
        let err = stub.client().resolve_item(ID).unwrap_err();
        assert_eq!(
            err,
            JellyfinError::NotFound {
                item_id: ID.to_string()
            }
        );
        assert!(err.to_string().contains(&format!("no item {ID}")), "{err}");
        assert!(err.is_item_problem());
    }

    #[test]
    fn another_item_is_not_taken() {
        let stub = Stub::json(
            "200 OK",
            &items_json(serde_json::json!({"Id": "ffff", "Path": "/m/other.mkv"})),
        );
        let err = stub.client().resolve_item(ID).unwrap_err();
        assert!(matches!(err, JellyfinError::WrongItem { .. }), "{err:?}");
        assert!(err.to_string().contains("(ffff)"), "{err}");
    }

    #[test]
    fn item_without_path() {
        let stub = Stub::json(
            "200 OK",
            &items_json(serde_json::json!({
                "Id": ID, "Name": "Some Show", "Type": "Series", "MediaSources": []
            })),
        );
        let err = stub.client().resolve_item(ID).unwrap_err();
        assert!(matches!(err, JellyfinError::NoPath { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("\"Some Show\", Series"), "{msg}");
        assert!(msg.contains("has no file path"), "{msg}");
    }

    #[test]
    fn remote_or_windows_path_is_not_local() {
        for path in ["http://cdn.example/stream.m3u8", "D:\\Films\\x.mkv"] {
            let stub = Stub::json(
                "200 OK",
                &items_json(serde_json::json!({"Id": ID, "Path": path})),
            );
            let err = stub.client().resolve_item(ID).unwrap_err();
            assert!(matches!(err, JellyfinError::NotLocalPath { .. }), "{err:?}");
        }
    }

    #[test]
    fn bad_json() {
        for (body, want) in [
            ("<html>Jellyfin is starting</html>", "expected value"),
            (r#"{"TotalRecordCount":0}"#, "no \"Items\" array"),
            (r#"{"Items":[{"Id":7}]}"#, "invalid type"),
        ] {
            let stub = Stub::json("200 OK", body);
            let err = stub.client().resolve_item(ID).unwrap_err();
            assert!(matches!(err, JellyfinError::BadJson { .. }), "{err:?}");
            assert!(err.to_string().contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn unreachable_port_names_the_url() {
        let port = dead_port();
        let client = JellyfinClient::new(&format!("http://127.0.0.1:{port}"), KEY).unwrap();
        let err = client.resolve_item(ID).unwrap_err();
        let url = format!("http://127.0.0.1:{port}/Items?ids={ID}&fields=Path,MediaSources");
        assert!(
            matches!(&err, JellyfinError::Unreachable { url: u, .. } if *u == url),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("cannot reach Jellyfin at {url}: ")),
            "{msg}"
        );
        assert!(!msg.contains(KEY), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn silent_server_times_out() {
        let stub = Stub::start(None);
        let client = stub.client().with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = client.resolve_item(ID).unwrap_err();
        assert!(matches!(err, JellyfinError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            err.to_string().contains("did not answer within 0.3 s"),
            "{err}"
        );
        assert_eq!(
            stub.client().timeout(),
            DEFAULT_TIMEOUT,
            "the default is 5 s"
        );
    }

    #[test]
    fn invalid_item_id_makes_no_request() {
        // Nothing listens there: reaching the network would give Unreachable instead.
        let client =
            JellyfinClient::new(&format!("http://127.0.0.1:{}", dead_port()), KEY).unwrap();
        for id in ["", "../Users", "a b", "x&api_key=1"] {
            let err = client.resolve_item(id).unwrap_err();
            assert!(
                matches!(err, JellyfinError::InvalidItemId { .. }),
                "{id}: {err:?}"
            );
        }
    }

    #[test]
    fn https_is_spoken_and_a_failed_handshake_says_so() {
        for url in ["https://jf.example.org", "HTTPS://jf.example.org:8920/"] {
            JellyfinClient::new(url, KEY).unwrap();
        }
        // A server that answers in plain HTTP where TLS is expected (the https port is wrong).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            let _ = stream.flush();
            thread::sleep(Duration::from_millis(500));
        });
        let client = JellyfinClient::new(&format!("https://127.0.0.1:{port}"), KEY).unwrap();
        let err = client.resolve_item(ID).unwrap_err();
        assert!(matches!(err, JellyfinError::Tls { .. }), "{err:?}");
        assert!(err.is_configuration_problem());
        let msg = err.to_string();
        assert!(msg.contains("TLS connection"), "{msg}");
        assert!(msg.contains("SSL_CERT_FILE"), "{msg}");
        assert!(!msg.contains(KEY), "{msg}");
    }

    #[test]
    fn other_bad_urls_and_keys_refused_at_new() {
        for (url, want) in [
            ("jf.local:8096", "must start with http://"),
            ("ftp://jf.local", "must start with http://"),
            ("http://", "no host"),
            ("http://:8096", "no host"),
            ("http://user:pw@jf.local", "credentials"),
            ("http://jf.local/?api_key=x", "query"),
            ("http://jf local", "whitespace"),
        ] {
            let err = JellyfinClient::new(url, KEY).unwrap_err();
            assert!(
                matches!(err, JellyfinError::InvalidUrl { .. }),
                "{url}: {err:?}"
            );
            assert!(err.to_string().contains(want), "{url}: {err}");
        }
        assert!(JellyfinClient::new("HTTP://Jf.Local:8096/", KEY).is_ok());
        for key in ["", "  ", "abc\"def", "abc def", "ключ"] {
            let err = JellyfinClient::new("http://jf.local", key).unwrap_err();
            assert!(
                matches!(err, JellyfinError::InvalidApiKey { .. }),
                "{key:?}: {err:?}"
            );
            if !key.trim().is_empty() {
                assert!(!err.to_string().contains(key), "{err}");
            }
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let client = JellyfinClient::new("http://jf.local:8096", KEY).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn item_id_rules() {
        assert_eq!(check_item_id(ID), Ok(()));
        assert_eq!(
            check_item_id("6f1b1c5e-7a2d-4c0f-9e8d-7c6b5a493827"),
            Ok(())
        );
        assert_eq!(check_item_id(&ID.to_uppercase()), Ok(()));
        assert_eq!(check_item_id(""), Err(ItemIdError::Empty));
        for not_guid in [
            "abc",
            "6f1b1c5e7a2d4c0f9e8d7c6b5a49382",
            "6f1b1c5e7a2d4c0f9e8d7c6b5a4938270",
            "6f1b1c5e-7a2d4c0f-9e8d-7c6b5a493827",
            "6f1b1c5e-7a2d-4c0f-9e8d7c6b5a49382-",
        ] {
            assert_eq!(
                check_item_id(not_guid),
                Err(ItemIdError::NotGuid {
                    len: not_guid.len()
                }),
                "{not_guid}"
            );
        }
        assert_eq!(
            check_item_id("abc_def"),
            Err(ItemIdError::BadChar { found: '_' })
        );
        assert_eq!(check_item_id("é"), Err(ItemIdError::BadChar { found: 'é' }));
    }
}
