//! Webhook bodies: what `POST /upscale-trigger` (and `POST /api/warmup`) receive, parsed and
//! classified without any I/O.
//!
//! The body is JSON whatever its `Content-Type`: Jellyfin's Webhook plugin sends `text/plain`
//! unless told otherwise, and its templates are hand-written, so the parser is lenient with fields
//! it does not use and strict with the ones it does. Three forms are accepted:
//!
//! - the seed form `{"Item":{"Path":"/media/Movie.mkv","Name":"Movie"}}`;
//! - a plain `{"path":"/media/Movie.mkv"}` (optionally `"name"`, `"position_seconds"`);
//! - the Webhook plugin form `{"NotificationType":"PlaybackStart","ItemId":"…","Name":"…",
//!   "ItemType":"Movie",…}`. The plugin has no reliable file path variable, so the item is named by
//!   its id and resolved through the Jellyfin API ([`crate::jellyfin`]).
//!
//! [`parse_trigger`] turns a body into a [`Trigger`]; [`decide`] says whether it starts a job and
//! at which [`Priority`]. Paths are kept byte-exact: checking that they lie inside a media root is
//! the caller's job, after canonicalisation.

mod handlebars;

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::jellyfin::{check_item_id, ItemIdError};
pub use crate::jobs::Priority;
use handlebars::{decode_html_entities, repair_json};

/// The largest body the webhook routes accept (warp's `content_length_limit`). A full Webhook
/// plugin payload with every property is a few kilobytes.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Jellyfin item types that are worth upscaling (compared case-insensitively).
pub const VIDEO_ITEM_TYPES: [&str; 5] = ["Movie", "Episode", "Video", "MusicVideo", "Trailer"];

/// Jellyfin counts time in ticks of 100 ns.
const TICKS_PER_SECOND: f64 = 10_000_000.0;

/// A request to upscale one film, as the body described it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub target: Target,
    /// Display name, if the body gave one.
    pub name: Option<String>,
    pub event: Event,
    /// Jellyfin's item type (`Movie`, `Episode`, `Audio`, …), if the body gave one.
    pub item_type: Option<String>,
    /// Where the viewer is, from `PlaybackPositionTicks` / `PlaybackPosition` (plugin form) or
    /// `position_seconds` (direct requests).
    pub position_seconds: Option<f64>,
}

/// What to upscale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An absolute path, exactly as sent (not canonicalised, not checked against media roots).
    Path(PathBuf),
    /// A Jellyfin item id (1 to 64 characters of `[A-Za-z0-9-]`), to resolve through the API.
    JellyfinItem(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Path(path) => write!(f, "path {:?}", path),
            Target::JellyfinItem(id) => write!(f, "Jellyfin item {id}"),
        }
    }
}

/// Why the body was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PlaybackStart,
    ItemAdded,
    /// No `NotificationType`: a direct request (curl, the browser script, another tool).
    Explicit,
    /// Any other `NotificationType` (`PlaybackStop`, `PlaybackProgress`, …), as sent.
    Other(String),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::PlaybackStart => f.write_str("PlaybackStart"),
            Event::ItemAdded => f.write_str("ItemAdded"),
            Event::Explicit => f.write_str("explicit request"),
            Event::Other(name) => f.write_str(name),
        }
    }
}

/// What to do with a well-formed trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Start(Priority),
    /// Not an error (the sender did nothing wrong): answer 200 with this reason.
    Ignore(String),
}

/// Why a body was refused. Every variant is the client's fault (400, or 413 for
/// [`BodyError::TooLarge`]); the message says exactly what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error(
        "the request body is empty; send a JSON object such as {{\"path\":\"/media/Movie.mkv\"}}"
    )]
    Empty,
    #[error("the request body is {len} bytes; the limit is {max} bytes")]
    TooLarge { len: u64, max: u64 },
    #[error(
        "the request body is not JSON ({detail}); send a JSON object (with Jellyfin's Webhook \
         plugin: a \"Generic\" destination with a JSON template, not \"Generic Form\")"
    )]
    NotJson {
        line: usize,
        column: usize,
        /// serde_json's message, which ends with the line and column.
        detail: String,
    },
    #[error("the request body is a JSON {found}, not an object")]
    NotObject { found: &'static str },
    #[error(
        "no file path or Jellyfin item id in the body; accepted forms: \
         {{\"Item\":{{\"Path\":\"/media/Movie.mkv\"}}}}, {{\"path\":\"/media/Movie.mkv\"}}, or a \
         Jellyfin Webhook plugin body with \"ItemId\" (e.g. \
         {{\"NotificationType\":\"PlaybackStart\",\"ItemId\":\"{{{{ItemId}}}}\"}})"
    )]
    NoTarget,
    #[error("`{field}` is an empty path")]
    PathEmpty { field: String },
    #[error("`{field}` is not an absolute path: {path:?}")]
    PathNotAbsolute { field: String, path: String },
    #[error("`{field}` contains a NUL byte, which no file path can hold")]
    PathHasNul { field: String },
    #[error("`{field}` is not a valid Jellyfin item id: {reason}")]
    BadItemId { field: String, reason: ItemIdError },
    #[error("`{field}`: {problem}")]
    BadField { field: String, problem: String },
}

impl BodyError {
    /// A stable, machine-readable code for the JSON error reply.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::Empty => "empty_body",
            BodyError::TooLarge { .. } => "body_too_large",
            BodyError::NotJson { .. } => "not_json",
            BodyError::NotObject { .. } => "not_an_object",
            BodyError::NoTarget => "no_target",
            BodyError::PathEmpty { .. }
            | BodyError::PathNotAbsolute { .. }
            | BodyError::PathHasNul { .. } => "bad_path",
            BodyError::BadItemId { .. } => "bad_item_id",
            BodyError::BadField { .. } => "bad_field",
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Parses a webhook body (raw bytes, whatever the Content-Type said).
///
/// A leading UTF-8 byte-order mark and surrounding whitespace are ignored. Where the body names
/// both a path and an item id, the plugin form (a `NotificationType` is present) prefers
/// `ItemId`, because a path rendered by a Handlebars template is HTML-escaped (`&` → `&amp;`);
/// direct requests prefer the path.
pub fn parse_trigger(body: &[u8]) -> Result<Trigger, BodyError> {
    let len = body.len() as u64;
    if len > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge {
            len,
            max: MAX_BODY_BYTES,
        });
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        // A body the Webhook plugin rendered from `{{Name}}` can be invalid JSON: then the
        // repaired body counts, and the original's error is the one reported.
        Err(error) => repair_json(body)
            .and_then(|repaired| serde_json::from_slice(&repaired).ok())
            .ok_or_else(|| BodyError::NotJson {
                line: error.line(),
                column: error.column(),
                detail: error.to_string(),
            })?,
    };
    let obj = match &value {
        Value::Object(obj) => obj,
        other => {
            return Err(BodyError::NotObject {
                found: type_name(other),
            })
        }
    };

    let event = match string_field(obj, "NotificationType")? {
        None => Event::Explicit,
        Some((key, "")) => {
            return Err(BodyError::BadField {
                field: key.to_string(),
                problem: "is empty (the template should write {{NotificationType}})".to_string(),
            })
        }
        Some((_, kind)) if kind.eq_ignore_ascii_case("PlaybackStart") => Event::PlaybackStart,
        Some((_, kind)) if kind.eq_ignore_ascii_case("ItemAdded") => Event::ItemAdded,
        Some((_, kind)) => Event::Other(kind.to_string()),
    };
    let plugin_form = event != Event::Explicit;

    let item = match field(obj, "Item") {
        None => None,
        Some((_, Value::Object(item))) => Some(item),
        Some((key, other)) => {
            return Err(BodyError::BadField {
                field: key.to_string(),
                problem: format!("expected an object, got {}", type_name(other)),
            })
        }
    };

    let target = choose_target(obj, item, plugin_form)?;

    // The seed form carries its name inside `Item`; the others at the top level.
    let name = match item {
        Some(item) if field(item, "Name").is_some() => name_field(item, "Name", "Item.")?,
        _ => name_field(obj, "Name", "")?,
    };
    // Handlebars HTML-escapes `{{Name}}` ("Tom &amp; Jerry", "Am&#233;lie").
    let name = if plugin_form {
        name.map(|n| decode_html_entities(&n))
    } else {
        name
    };

    let item_type = match string_field(obj, "ItemType")? {
        Some((_, "")) | None => None,
        Some((_, ty)) => Some(ty.to_string()),
    };

    let position_seconds = position(obj)?;

    Ok(Trigger {
        target,
        name,
        event,
        item_type,
        position_seconds,
    })
}

/// Whether a trigger starts a job, and at which priority.
///
/// `PlaybackStart` and direct requests → [`Priority::Playback`]; `ItemAdded` →
/// [`Priority::Library`]; any other event, or an item type that is not a video, is ignored.
pub fn decide(trigger: &Trigger) -> Decision {
    let priority = match &trigger.event {
        Event::PlaybackStart | Event::Explicit => Priority::Playback,
        Event::ItemAdded => Priority::Library,
        Event::Other(kind) => {
            return Decision::Ignore(format!("event {kind} does not start upscaling"));
        }
    };
    if let Some(item_type) = &trigger.item_type {
        if !is_video_item_type(item_type) {
            return Decision::Ignore(format!("item type {item_type} is not a video"));
        }
    }
    Decision::Start(priority)
}

/// Whether a Jellyfin item type names a video (see [`VIDEO_ITEM_TYPES`]).
pub fn is_video_item_type(item_type: &str) -> bool {
    VIDEO_ITEM_TYPES
        .iter()
        .any(|video| video.eq_ignore_ascii_case(item_type))
}

/// Picks the first present candidate in the form's order of preference and validates it strictly;
/// the others are ignored.
fn choose_target(
    obj: &Map<String, Value>,
    item: Option<&Map<String, Value>>,
    plugin_form: bool,
) -> Result<Target, BodyError> {
    enum Candidate<'a> {
        Path(String, &'a Value),
        ItemId(String, &'a Value),
    }
    let item_path = item
        .and_then(|item| field(item, "Path"))
        .map(|(key, v)| Candidate::Path(format!("Item.{key}"), v));
    let top_path = field(obj, "Path").map(|(key, v)| Candidate::Path(key.to_string(), v));
    let item_id = field(obj, "ItemId").map(|(key, v)| Candidate::ItemId(key.to_string(), v));
    let order = if plugin_form {
        [item_id, top_path, item_path]
    } else {
        [item_path, top_path, item_id]
    };
    match order.into_iter().flatten().next() {
        None => Err(BodyError::NoTarget),
        Some(Candidate::Path(key, value)) => {
            let path = expect_str(&key, value)?;
            check_path(key, path).map(Target::Path)
        }
        Some(Candidate::ItemId(key, value)) => {
            let id = expect_str(&key, value)?;
            match check_item_id(id) {
                Ok(()) => Ok(Target::JellyfinItem(id.to_string())),
                Err(reason) => Err(BodyError::BadItemId { field: key, reason }),
            }
        }
    }
}

fn check_path(field: String, path: &str) -> Result<PathBuf, BodyError> {
    if path.is_empty() {
        return Err(BodyError::PathEmpty { field });
    }
    if path.contains('\0') {
        return Err(BodyError::PathHasNul { field });
    }
    let path_buf = PathBuf::from(path);
    if !path_buf.is_absolute() {
        return Err(BodyError::PathNotAbsolute {
            field,
            path: shorten(path),
        });
    }
    Ok(path_buf)
}

/// The viewer's position in seconds: `PlaybackPositionTicks` (a number, or a number in a string,
/// as templates write either), else `PlaybackPosition` (`hh:mm:ss`), else `position_seconds`.
/// Empty strings count as absent: templates render unknown variables as "".
fn position(obj: &Map<String, Value>) -> Result<Option<f64>, BodyError> {
    if let Some(ticks) = number_field(obj, "PlaybackPositionTicks")? {
        return Ok(Some(ticks / TICKS_PER_SECOND));
    }
    match string_field(obj, "PlaybackPosition")? {
        Some((_, "")) | None => {}
        Some((key, text)) => {
            return match parse_clock(text) {
                Some(seconds) => Ok(Some(seconds)),
                None => Err(BodyError::BadField {
                    field: key.to_string(),
                    problem: format!("expected hh:mm:ss, got {:?}", shorten(text)),
                }),
            };
        }
    }
    number_field(obj, "position_seconds")
}

/// A non-negative finite number, given as a JSON number or a string holding one.
fn number_field(obj: &Map<String, Value>, name: &str) -> Result<Option<f64>, BodyError> {
    let Some((key, value)) = field(obj, name) else {
        return Ok(None);
    };
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        _ => Err(BodyError::BadField {
            field: key.to_string(),
            problem: format!("expected a non-negative number, got {}", describe(value)),
        }),
    }
}

/// `[d.]hh:mm:ss[.fffffff]`, as .NET's TimeSpan prints it.
fn parse_clock(text: &str) -> Option<f64> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    let [hours, minutes, seconds] = parts.as_slice() else {
        return None;
    };
    let (days, hours) = match hours.split_once('.') {
        Some((days, hours)) => (days.parse::<u64>().ok()?, hours),
        None => (0, *hours),
    };
    let hours: u64 = hours.parse().ok()?;
    let minutes: u64 = minutes.parse().ok()?;
    if minutes >= 60 || !seconds.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let seconds: f64 = seconds.parse().ok()?;
    if !(0.0..60.0).contains(&seconds) {
        return None;
    }
    Some(((days * 24 + hours) * 3600 + minutes * 60) as f64 + seconds)
}

/// A display name: a string (or a bare number: a template writing `"Name": {{Name}}` for a film
/// called 1917); empty means absent.
fn name_field(
    obj: &Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<Option<String>, BodyError> {
    match field(obj, name) {
        None => Ok(None),
        Some((_, Value::String(s))) if s.is_empty() => Ok(None),
        Some((_, Value::String(s))) => Ok(Some(s.clone())),
        Some((_, Value::Number(n))) => Ok(Some(n.to_string())),
        Some((key, other)) => Err(BodyError::BadField {
            field: format!("{prefix}{key}"),
            problem: format!("expected a string, got {}", type_name(other)),
        }),
    }
}

/// A field that must be a string when present (null counts as absent).
fn string_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<(&'a str, &'a str)>, BodyError> {
    match field(obj, name) {
        None => Ok(None),
        Some((key, value)) => Ok(Some((key, expect_str(key, value)?))),
    }
}

fn expect_str<'a>(key: &str, value: &'a Value) -> Result<&'a str, BodyError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(BodyError::BadField {
            field: key.to_string(),
            problem: format!("expected a string, got {}", type_name(other)),
        }),
    }
}

/// Looks a key up exactly, then ignoring ASCII case (`path`, `Path`, `itemId`: templates are
/// written by hand). A null value counts as absent. Returns the key as the body spelt it.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<(&'a str, &'a Value)> {
    let found = obj
        .get_key_value(name)
        .or_else(|| obj.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)));
    match found {
        Some((_, Value::Null)) | None => None,
        Some((key, value)) => Some((key.as_str(), value)),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A short rendering of a value for an error message.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", shorten(s)),
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_string(),
    }
}

/// At most 120 characters of a client-supplied string, for error messages.
fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(body: &str) -> Trigger {
        match parse_trigger(body.as_bytes()) {
            Ok(trigger) => trigger,
            Err(e) => panic!("body {body:?} refused: {e}"),
        }
    }

    fn parse_err(body: &[u8]) -> BodyError {
        match parse_trigger(body) {
            Ok(trigger) => panic!(
                "body {:?} accepted: {trigger:?}",
                String::from_utf8_lossy(body)
            ),
            Err(e) => e,
        }
    }

    fn path(p: &str) -> Target {
        Target::Path(PathBuf::from(p))
    }

    /// What the Webhook plugin sends for a PlaybackStart with a template in the style of its own
    /// samples (values as `{{Var}}` renders them: numbers bare or quoted, unknowns as "").
    const PLUGIN_PLAYBACK_START: &str = r#"{
        "NotificationType": "PlaybackStart",
        "ServerId": "9a3d7b5c1e8f4a2b9c0d1e2f3a4b5c6d",
        "ServerName": "media-box",
        "ServerVersion": "10.10.3",
        "ServerUrl": "http://192.168.1.20:8096",
        "Timestamp": "2025-01-04T21:17:33.1234567+01:00",
        "UtcTimestamp": "2025-01-04T20:17:33.1234567Z",
        "Name": "Tom &amp; Jerry: The Movie",
        "Overview": "",
        "Tagline": "",
        "ItemId": "6f1b1c5e7a2d4c0f9e8d7c6b5a493827",
        "ItemType": "Movie",
        "RunTimeTicks": 50460000000,
        "RunTime": "01:24:06",
        "Year": 1992,
        "PremiereDate": "1992-10-01",
        "Genres": "Animation, Comedy",
        "Provider_tmdb": "15300",
        "Provider_imdb": "tt0105616",
        "Video_0_Title": "1080p H264 SDR",
        "Video_0_Height": 1080,
        "Video_0_Width": 1920,
        "Audio_0_Channels": 6,
        "Audio_0_Default": true,
        "PlaybackPositionTicks": 1234560000,
        "PlaybackPosition": "00:02:03",
        "MediaSourceId": "6f1b1c5e7a2d4c0f9e8d7c6b5a493827",
        "IsPaused": false,
        "IsAutomated": false,
        "DeviceId": "TW96aWxsYS81LjA",
        "DeviceName": "Firefox",
        "ClientName": "Jellyfin Web",
        "PlayMethod": "Transcode",
        "NotificationUsername": "alice",
        "UserId": "0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a",
        "LastLoginDate": "2025-01-04T19:00:00.0000000Z",
        "LastActivityDate": "",
        "SeriesName": "",
        "SeasonNumber": "",
        "EpisodeNumber00": ""
    }"#;

    #[test]
    fn seed_form() {
        let t =
            parse_ok(r#"{"Item":{"Path":"/media/Movie.mkv","Name":"Movie","Year":2001},"x":1}"#);
        assert_eq!(t.target, path("/media/Movie.mkv"));
        assert_eq!(t.name.as_deref(), Some("Movie"));
        assert_eq!(t.event, Event::Explicit);
        assert_eq!(t.item_type, None);
        assert_eq!(t.position_seconds, None);
        assert_eq!(decide(&t), Decision::Start(Priority::Playback));
    }

    #[test]
    fn plain_path_form() {
        let t = parse_ok(r#"{"path":"/media/Movie.mkv"}"#);
        assert_eq!(t.target, path("/media/Movie.mkv"));
        assert_eq!(t.name, None);
        assert_eq!(t.event, Event::Explicit);

        let t = parse_ok(r#"{"path":"/media/A.mkv","name":"A","position_seconds":"12.5"}"#);
        assert_eq!(t.target, path("/media/A.mkv"));
        assert_eq!(t.name.as_deref(), Some("A"));
        assert_eq!(t.position_seconds, Some(12.5));
        assert_eq!(decide(&t), Decision::Start(Priority::Playback));
    }

    #[test]
    fn text_plain_bytes_with_bom_and_whitespace() {
        let mut body = b"\xEF\xBB\xBF \r\n\t".to_vec();
        body.extend_from_slice(br#"{"Item":{"Path":"/media/Movie.mkv","Name":"Movie"}}"#);
        body.extend_from_slice(b"\n\n  ");
        let t = parse_trigger(&body).unwrap();
        assert_eq!(t.target, path("/media/Movie.mkv"));
        assert_eq!(t.name.as_deref(), Some("Movie"));

        let t = parse_trigger(b"  {\"path\":\"/m/x.mkv\"}  \n").unwrap();
        assert_eq!(t.target, path("/m/x.mkv"));
    }

    #[test]
    fn full_plugin_playback_start() {
        let t = parse_ok(PLUGIN_PLAYBACK_START);
        assert_eq!(
            t.target,
            Target::JellyfinItem("6f1b1c5e7a2d4c0f9e8d7c6b5a493827".into())
        );
        assert_eq!(t.event, Event::PlaybackStart);
        assert_eq!(t.name.as_deref(), Some("Tom & Jerry: The Movie"));
        assert_eq!(t.item_type.as_deref(), Some("Movie"));
        assert_eq!(t.position_seconds, Some(123.456));
        assert_eq!(decide(&t), Decision::Start(Priority::Playback));
    }

    #[test]
    fn plugin_minimal_template_with_hyphenated_id_and_quoted_ticks() {
        let t = parse_ok(
            r#"{"NotificationType":"PlaybackStart","ItemId":"6f1b1c5e-7a2d-4c0f-9e8d-7c6b5a493827",
                "Name":"Am&#233;lie","ItemType":"Movie","PlaybackPositionTicks":"600000000"}"#,
        );
        assert_eq!(
            t.target,
            Target::JellyfinItem("6f1b1c5e-7a2d-4c0f-9e8d-7c6b5a493827".into())
        );
        assert_eq!(t.name.as_deref(), Some("Amélie"));
        assert_eq!(t.position_seconds, Some(60.0));
    }

    /// The bytes the plugin sends for a film called `The "Film" \ Cut` from a template that
    /// writes `"Name": "{{Name}}"` (double-stash): its quote escape, then Handlebars' HTML one.
    #[test]
    fn a_double_stash_name_with_quotes_still_starts_the_job() {
        for id in [
            "6f1b1c5e7a2d4c0f9e8d7c6b5a493827",
            "6f1b1c5e-7a2d-4c0f-9e8d-7c6b5a493827",
        ] {
            let body = format!(
                "{{\"NotificationType\":\"PlaybackStart\",\"ItemId\":\"{id}\",\
                 \"Name\":\"The \\&quot;Film\\&quot; \\ Cut\",\"ItemType\":\"Movie\"}}"
            );
            assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
            let t = parse_ok(&body);
            assert_eq!(t.target, Target::JellyfinItem(id.into()));
            assert_eq!(t.name.as_deref(), Some("The \"Film\" \\ Cut"));
            assert_eq!(decide(&t), Decision::Start(Priority::Playback));
        }
        // What cannot be repaired is still refused, with the original's position.
        let e = parse_err(b"{\"ItemId\":\"a\" \\&quot;}");
        assert!(
            matches!(
                e,
                BodyError::NotJson {
                    line: 1,
                    column: 15,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn plugin_position_from_clock_when_no_ticks() {
        let t = parse_ok(
            r#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","PlaybackPositionTicks":"",
                "PlaybackPosition":"01:02:03"}"#,
        );
        assert_eq!(t.position_seconds, Some(3723.0));
        let t = parse_ok(
            r#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5"}"#,
        );
        assert_eq!(t.position_seconds, None);
    }

    #[test]
    fn item_added_is_library_priority() {
        let t = parse_ok(
            r#"{"NotificationType":"ItemAdded","ItemId":"0123456789abcdef0123456789abcdef",
                "Name":"New Film","ItemType":"Movie","PlaybackPositionTicks":"","Year":""}"#,
        );
        assert_eq!(t.event, Event::ItemAdded);
        assert_eq!(t.position_seconds, None);
        assert_eq!(decide(&t), Decision::Start(Priority::Library));
        assert!(Priority::Playback < Priority::Library);
    }

    #[test]
    fn episode_and_other_video_types_start() {
        for ty in ["Episode", "video", "MUSICVIDEO", "Trailer"] {
            let body = format!(
                r#"{{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","ItemType":"{ty}"}}"#
            );
            assert_eq!(
                decide(&parse_ok(&body)),
                Decision::Start(Priority::Playback),
                "{ty}"
            );
        }
    }

    #[test]
    fn playback_stop_is_ignored() {
        let body = PLUGIN_PLAYBACK_START.replace("\"PlaybackStart\"", "\"PlaybackStop\"");
        let t = parse_ok(&body);
        assert_eq!(t.event, Event::Other("PlaybackStop".into()));
        assert_eq!(
            decide(&t),
            Decision::Ignore("event PlaybackStop does not start upscaling".into())
        );
    }

    #[test]
    fn audio_item_is_ignored() {
        let t = parse_ok(
            r#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","Name":"Song","ItemType":"Audio"}"#,
        );
        assert_eq!(
            decide(&t),
            Decision::Ignore("item type Audio is not a video".into())
        );
        // A direct request naming a non-video type is ignored too.
        let t = parse_ok(r#"{"path":"/m/a.flac","ItemType":"Audio"}"#);
        assert_eq!(
            decide(&t),
            Decision::Ignore("item type Audio is not a video".into())
        );
    }

    #[test]
    fn item_id_alone_is_an_explicit_request() {
        let t = parse_ok(r#"{"ItemId":"0c1d2e3f-4a5b-46c7-d8e9-f0a1b2c3d4e5"}"#);
        assert_eq!(
            t.target,
            Target::JellyfinItem("0c1d2e3f-4a5b-46c7-d8e9-f0a1b2c3d4e5".into())
        );
        assert_eq!(t.event, Event::Explicit);
        assert_eq!(decide(&t), Decision::Start(Priority::Playback));
    }

    #[test]
    fn target_preference() {
        // Plugin form: ItemId wins over a (possibly HTML-escaped) rendered path.
        let t = parse_ok(
            r#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","Path":"/m/Tom &amp; Jerry.mkv"}"#,
        );
        assert_eq!(
            t.target,
            Target::JellyfinItem("0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5".into())
        );
        // Plugin form without ItemId: its Path is used.
        let t = parse_ok(r#"{"NotificationType":"ItemAdded","Path":"/m/x.mkv"}"#);
        assert_eq!(t.target, path("/m/x.mkv"));
        // Direct request: the path wins.
        let t = parse_ok(
            r#"{"Item":{"Path":"/m/seed.mkv"},"path":"/m/top.mkv","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5"}"#,
        );
        assert_eq!(t.target, path("/m/seed.mkv"));
        let t = parse_ok(r#"{"Path":"/m/top.mkv","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5"}"#);
        assert_eq!(t.target, path("/m/top.mkv"));
        // Nulls count as absent.
        let t =
            parse_ok(r#"{"path":null,"ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","Name":null}"#);
        assert_eq!(
            t.target,
            Target::JellyfinItem("0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5".into())
        );
    }

    #[test]
    fn hostile_path_is_kept_byte_exact() {
        let raw = "/media/My \"Film\"; rm -rf $(whoami) `id` 'x'\nline2 & done.mkv";
        let body = serde_json::json!({ "path": raw }).to_string();
        let t = parse_ok(&body);
        let Target::Path(p) = &t.target else {
            panic!("not a path: {:?}", t.target)
        };
        assert_eq!(p.as_os_str().as_encoded_bytes(), raw.as_bytes());
        let body = serde_json::json!({ "Item": { "Path": raw, "Name": "x" } }).to_string();
        assert_eq!(parse_ok(&body).target, Target::Path(PathBuf::from(raw)));
    }

    #[test]
    fn empty_body() {
        for body in [&b""[..], b"   \n\t", b"\xEF\xBB\xBF", b"\xEF\xBB\xBF\r\n"] {
            let e = parse_err(body);
            assert_eq!(e, BodyError::Empty);
            assert!(e.to_string().contains("body is empty"), "{e}");
            assert_eq!(e.code(), "empty_body");
        }
    }

    #[test]
    fn too_large() {
        let body = vec![b' '; MAX_BODY_BYTES as usize + 1];
        let e = parse_err(&body);
        assert_eq!(e.http_status(), 413);
        assert!(e.to_string().contains("65537 bytes"), "{e}");
        assert!(e.to_string().contains("65536"), "{e}");
    }

    #[test]
    fn not_json_has_position() {
        let e = parse_err(b"{\"path\": /media/x.mkv}");
        let BodyError::NotJson { line, column, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!((*line, *column), (1, 10));
        let msg = e.to_string();
        assert!(msg.contains("not JSON"), "{msg}");
        assert!(msg.contains("line 1 column 10"), "{msg}");
        assert_eq!(e.code(), "not_json");

        // The plugin's "Generic Form" destination.
        let e = parse_err(b"NotificationType=PlaybackStart&ItemId=abc");
        assert!(e.to_string().contains("Generic Form"), "{e}");

        // Trailing garbage after the object.
        let e = parse_err(b"{\"path\":\"/m/x.mkv\"} extra");
        assert!(matches!(e, BodyError::NotJson { line: 1, .. }), "{e:?}");
    }

    #[test]
    fn not_an_object() {
        let e = parse_err(br#"[{"path":"/m/x.mkv"}]"#);
        assert_eq!(e, BodyError::NotObject { found: "array" });
        assert_eq!(
            e.to_string(),
            "the request body is a JSON array, not an object"
        );
        assert_eq!(e.code(), "not_an_object");
        assert!(parse_err(b"\"/m/x.mkv\"")
            .to_string()
            .contains("JSON string, not an object"));
        assert!(parse_err(b"null")
            .to_string()
            .contains("JSON null, not an object"));
    }

    #[test]
    fn no_target_names_the_accepted_forms() {
        for body in [
            &br#"{}"#[..],
            br#"{"Name":"Movie"}"#,
            br#"{"Item":{"Name":"Movie"}}"#,
            br#"{"NotificationType":"PlaybackStart","Name":"Movie","ItemType":"Movie"}"#,
            br#"{"path":null}"#,
        ] {
            let e = parse_err(body);
            assert_eq!(e, BodyError::NoTarget);
            let msg = e.to_string();
            assert!(
                msg.contains(r#"{"Item":{"Path":"/media/Movie.mkv"}}"#),
                "{msg}"
            );
            assert!(msg.contains(r#"{"path":"/media/Movie.mkv"}"#), "{msg}");
            assert!(msg.contains("\"ItemId\""), "{msg}");
            assert!(msg.contains("{{ItemId}}"), "{msg}");
        }
    }

    #[test]
    fn empty_path() {
        let e = parse_err(br#"{"Item":{"Path":"","Name":"Movie"}}"#);
        assert_eq!(
            e,
            BodyError::PathEmpty {
                field: "Item.Path".into()
            }
        );
        assert_eq!(e.to_string(), "`Item.Path` is an empty path");
        assert_eq!(e.code(), "bad_path");
        let e = parse_err(br#"{"path":""}"#);
        assert_eq!(e.to_string(), "`path` is an empty path");
    }

    #[test]
    fn relative_path() {
        let e = parse_err(br#"{"path":"media/Movie.mkv"}"#);
        assert_eq!(
            e.to_string(),
            "`path` is not an absolute path: \"media/Movie.mkv\""
        );
        let e = parse_err(br#"{"Item":{"Path":" /media/Movie.mkv"}}"#);
        assert!(matches!(e, BodyError::PathNotAbsolute { .. }), "{e:?}");
        let e = parse_err(br#"{"path":"C:\\Movies\\x.mkv"}"#);
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }

    #[test]
    fn nul_in_path() {
        let e = parse_err(br#"{"path":"/m/x\u0000.mkv"}"#);
        assert_eq!(
            e.to_string(),
            "`path` contains a NUL byte, which no file path can hold"
        );
    }

    #[test]
    fn path_of_wrong_type() {
        let e = parse_err(br#"{"path":["/m/x.mkv"]}"#);
        assert_eq!(e.to_string(), "`path`: expected a string, got array");
        let e = parse_err(br#"{"Item":"/m/x.mkv"}"#);
        assert_eq!(e.to_string(), "`Item`: expected an object, got string");
    }

    #[test]
    fn bad_item_ids() {
        let cases: [(&str, &str); 6] = [
            (r#""""#, "is empty"),
            (r#""abc/../x""#, "'/'"),
            (r#""abc def""#, "' '"),
            (r#""ab&c=1""#, "'&'"),
            (r#""abc""#, "GUIDs"),
            (r#""0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5f""#, "33 characters"),
        ];
        for (id, want) in cases {
            let body = format!(r#"{{"NotificationType":"PlaybackStart","ItemId":{id}}}"#);
            let e = parse_err(body.as_bytes());
            assert!(matches!(e, BodyError::BadItemId { .. }), "{id}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.starts_with("`ItemId` is not a valid Jellyfin item id: "),
                "{msg}"
            );
            assert!(msg.contains(want), "{id}: {msg}");
            assert_eq!(e.code(), "bad_item_id");
        }
        let e = parse_err(br#"{"ItemId":12345}"#);
        assert_eq!(e.to_string(), "`ItemId`: expected a string, got number");
        let e = parse_err(br#"{"ItemId":"abc"}"#);
        assert_eq!(
            e.to_string(),
            "`ItemId` is not a valid Jellyfin item id: Jellyfin's item ids are GUIDs, 32 hex \
             digits or 36 with hyphens (8-4-4-4-12); this one is 3 characters long"
        );
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn fields_we_use_are_strict() {
        let e =
            parse_err(br#"{"NotificationType":"","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5"}"#);
        assert!(
            e.to_string().starts_with("`NotificationType`: is empty"),
            "{e}"
        );
        let e = parse_err(br#"{"NotificationType":3,"ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5"}"#);
        assert_eq!(
            e.to_string(),
            "`NotificationType`: expected a string, got number"
        );
        let e = parse_err(br#"{"ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","ItemType":1}"#);
        assert_eq!(e.to_string(), "`ItemType`: expected a string, got number");
        let e = parse_err(
            br#"{"ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","PlaybackPositionTicks":"soon"}"#,
        );
        assert_eq!(
            e.to_string(),
            "`PlaybackPositionTicks`: expected a non-negative number, got \"soon\""
        );
        let e = parse_err(
            br#"{"ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","PlaybackPositionTicks":-5}"#,
        );
        assert!(e.to_string().contains("got -5"), "{e}");
        let e = parse_err(
            br#"{"ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","PlaybackPosition":"ages"}"#,
        );
        assert_eq!(
            e.to_string(),
            "`PlaybackPosition`: expected hh:mm:ss, got \"ages\""
        );
        let e = parse_err(br#"{"path":"/m/x.mkv","name":{"en":"x"}}"#);
        assert_eq!(e.to_string(), "`name`: expected a string, got object");
        let e = parse_err(br#"{"Item":{"Path":"/m/x.mkv","Name":true}}"#);
        assert_eq!(e.to_string(), "`Item.Name`: expected a string, got boolean");
    }

    #[test]
    fn lenient_with_fields_we_do_not_use() {
        let t = parse_ok(
            r#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","Name":1917,"ItemType":"",
                "Year":"","SeasonNumber":null,"IsPaused":"False","Video_0_Height":"",
                "Nested":{"a":[1,2,{}]},"ServerUrl":42}"#,
        );
        assert_eq!(t.name.as_deref(), Some("1917"));
        assert_eq!(t.item_type, None);
        assert_eq!(decide(&t), Decision::Start(Priority::Playback));
    }

    #[test]
    fn notification_type_case_and_key_case() {
        let t = parse_ok(
            r#"{"notificationtype":"playbackstart","itemid":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","itemtype":"movie"}"#,
        );
        assert_eq!(t.event, Event::PlaybackStart);
        assert_eq!(
            t.target,
            Target::JellyfinItem("0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5".into())
        );
        assert_eq!(decide(&t), Decision::Start(Priority::Playback));
    }

    #[test]
    fn clock_parsing() {
        assert_eq!(parse_clock("00:00:00"), Some(0.0));
        assert_eq!(parse_clock("01:24:06"), Some(5046.0));
        assert_eq!(parse_clock("1.02:00:00"), Some(93600.0));
        assert_eq!(parse_clock("00:00:01.5"), Some(1.5));
        for bad in [
            "", "12", "00:60:00", "00:00:60", "a:b:c", "00:00:-1", "1:2:3:4",
        ] {
            assert_eq!(parse_clock(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_plugin_forms_names_are_html_decoded() {
        let t = parse_ok(
            r#"{"NotificationType":"PlaybackStart","ItemId":"6f1b1c5e7a2d4c0f9e8d7c6b5a493827","Name":"A &amp; B"}"#,
        );
        assert_eq!(t.name.as_deref(), Some("A & B"));
        // A direct request's name is as sent.
        let t = parse_ok(r#"{"path":"/m/x.mkv","name":"A &amp; B"}"#);
        assert_eq!(t.name.as_deref(), Some("A &amp; B"));
    }

    #[test]
    fn display() {
        assert_eq!(path("/m/a b.mkv").to_string(), "path \"/m/a b.mkv\"");
        assert_eq!(
            Target::JellyfinItem("abc".into()).to_string(),
            "Jellyfin item abc"
        );
        assert_eq!(
            Event::Other("PlaybackStop".into()).to_string(),
            "PlaybackStop"
        );
    }
}
