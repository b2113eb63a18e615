//! Serving the daemon's HLS output: `GET | HEAD | OPTIONS /hls/{job}/{file}` from
//! `<hls_root>/<job>/<file>`.
//!
//! The request is handled in three steps, each usable alone (a later segment-on-demand hook goes
//! between the second and the third, on [`OpenError::NotFound`] for a [`FileKind::Segment`]):
//! 1. [`parse_tail`] + [`resolve`]: pure, lexical: the job id and the file name are checked against
//!    strict patterns (no `..`, no separators, no temporary files, no `job.json`) and joined.
//! 2. [`open_confined`]: the path is canonicalised (symlinks followed) and must still be a regular,
//!    servable file directly inside `<canonical hls_root>/<job>`; it is then opened.
//! 3. [`respond`]: headers (type, caching, CORS, ETag), conditional requests (`If-None-Match`),
//!    single byte ranges (`Range`, `If-Range`), HEAD without a body; the file is streamed.
//!
//! Every response of [`routes`] — 404s, 405s, 416s and the OPTIONS preflight included — carries the
//! CORS headers (DESIGN.md §4: CORS on every HLS response).

use std::fmt::Write as _;
use std::io::{Read as _, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::hyper::body::{Body, Bytes};
use warp::path::Tail;
use warp::reply::Response;
use warp::Filter;

/// The first path segment this filter answers under.
pub const PREFIX: &str = "hls";
/// Longest job id accepted.
pub const MAX_JOB_LEN: usize = 64;
/// Longest file name accepted.
pub const MAX_FILE_LEN: usize = 128;
/// A file no larger than this is read whole when it is opened, in the same trip off the async
/// workers (a segment is usually well under it); a larger one is sent in chunks of [`CHUNK`].
pub const READ_WHOLE: u64 = 4 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;

const ALLOW_METHODS: &str = "GET, HEAD, OPTIONS";
const ALLOW_HEADERS: &str = "Range, Content-Type, X-Playback-Session-Id, X-Liveup-Token";
const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, Accept-Ranges";
const MAX_AGE: &str = "86400";

/// What a servable file is, from its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `*.m3u8`
    Playlist,
    /// `*.ts` (an MPEG-TS segment; it exists under its final name only when complete)
    Segment,
    /// `*.m4s` (a CMAF media segment; likewise)
    CmafSegment,
    /// `*.mp4` (a CMAF track's init segment, written once)
    CmafInit,
    /// `*.jpg`, `*.jpeg`
    Jpeg,
    /// `*.png`
    Png,
}

impl FileKind {
    /// The kind of a file name by its (lower-case) extension; `None` for anything not served.
    /// The name is not otherwise checked: see [`file_kind`].
    pub fn from_extension(file: &str) -> Option<FileKind> {
        let (_, ext) = file.rsplit_once('.')?;
        match ext {
            "m3u8" => Some(FileKind::Playlist),
            "ts" => Some(FileKind::Segment),
            "m4s" => Some(FileKind::CmafSegment),
            "mp4" => Some(FileKind::CmafInit),
            "jpg" | "jpeg" => Some(FileKind::Jpeg),
            "png" => Some(FileKind::Png),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FileKind::Playlist => "application/vnd.apple.mpegurl",
            FileKind::Segment => "video/mp2t",
            FileKind::CmafSegment => "video/iso.segment",
            FileKind::CmafInit => "video/mp4",
            FileKind::Jpeg => "image/jpeg",
            FileKind::Png => "image/png",
        }
    }

    pub fn cache_control(self) -> &'static str {
        match self {
            FileKind::Segment | FileKind::CmafSegment | FileKind::CmafInit => {
                "public, max-age=31536000, immutable"
            }
            FileKind::Playlist | FileKind::Jpeg | FileKind::Png => "no-cache",
        }
    }
}

/// A job id: one path segment of `[A-Za-z0-9_-]{1,64}`.
pub fn valid_job_id(job: &str) -> bool {
    (1..=MAX_JOB_LEN).contains(&job.len())
        && job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The kind of a servable file name, or `None` when it must not be served: names are
/// `[A-Za-z0-9_.-]{1,128}` with no leading dot, no `..`, no `.tmp` anywhere (ffmpeg's temporary
/// files), and one of the extensions of [`FileKind`] (so never `job.json`).
pub fn file_kind(file: &str) -> Option<FileKind> {
    let ok = (1..=MAX_FILE_LEN).contains(&file.len())
        && !file.starts_with('.')
        && !file.contains("..")
        && !file.to_ascii_lowercase().contains(".tmp")
        && file != "job.json"
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        FileKind::from_extension(file)
    } else {
        None
    }
}

/// Splits the part of the request path after `/hls/` into its two segments, percent-decoded.
/// `None` unless there are exactly two non-empty segments that decode to UTF-8 (the decoded
/// values are then checked by [`resolve`]: a decoded `/`, `\`, `..` or NUL never passes).
pub fn parse_tail(tail: &str) -> Option<(String, String)> {
    let mut parts = tail.split('/');
    let (job, file) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((decode(job)?, decode(file)?))
}

/// A request that passed the lexical checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub job: String,
    pub file: String,
    /// `<hls_root>/<job>/<file>`, not canonicalised.
    pub path: PathBuf,
    pub kind: FileKind,
}

/// Pure, lexical resolution of `(job, file)` (already percent-decoded) under `hls_root`.
/// `None` for a bad job id or a file name that is never served. The result still has to go
/// through [`open_confined`], which follows symlinks and checks where they lead.
pub fn resolve(hls_root: &Path, job: &str, file: &str) -> Option<Resolved> {
    if !valid_job_id(job) {
        return None;
    }
    let kind = file_kind(file)?;
    Some(Resolved {
        job: job.to_owned(),
        file: file.to_owned(),
        path: hls_root.join(job).join(file),
        kind,
    })
}

/// Why [`open_confined`] did not open a file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file (or its folder, or `hls_root`) does not exist, is not a regular file, or cannot be
    /// read for lack of permission.
    #[error("no such file")]
    NotFound,
    /// The path exists but resolves somewhere it must not be served from.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// Any other I/O error.
    #[error(transparent)]
    Io(std::io::Error),
}

/// An open, servable file.
#[derive(Debug)]
pub struct Opened {
    pub file: std::fs::File,
    /// The whole file, when it was read at opening (see [`open_confined`]).
    pub contents: Option<Bytes>,
    /// The file's length when opened (the handle's metadata).
    pub len: u64,
    /// A strong validator: `"<len>-<mtime ns>"` in hex.
    pub etag: String,
    /// The canonical path that was opened.
    pub real_path: PathBuf,
}

/// Follows symlinks and checks that the file is a regular file directly inside
/// `<hls_root>/<job>` (a job folder that is a symlink is refused), whose canonical name is still
/// servable as the same kind; then opens it, and reads it whole when it is no longer than
/// `read_up_to` bytes. All of it in one blocking task. `hls_root` must be canonical.
pub async fn open_confined(
    hls_root: &Path,
    resolved: &Resolved,
    read_up_to: u64,
) -> Result<Opened, OpenError> {
    let (hls_root, resolved) = (hls_root.to_path_buf(), resolved.clone());
    tokio::task::spawn_blocking(move || open_blocking(&hls_root, &resolved, read_up_to))
        .await
        .unwrap_or_else(|e| Err(OpenError::Io(std::io::Error::other(e))))
}

fn open_blocking(
    hls_root: &Path,
    resolved: &Resolved,
    read_up_to: u64,
) -> Result<Opened, OpenError> {
    let lost = |_| OpenError::NotFound;
    let job_dir = hls_root.join(&resolved.job);
    if !std::fs::symlink_metadata(&job_dir).map_err(lost)?.is_dir() {
        return Err(OpenError::Refused("job folder resolves elsewhere"));
    }
    // The job id and file name are single plain names and `hls_root` is canonical, so a path
    // without a symlink is its own canonical form: only a symlink needs resolving.
    let is_link = std::fs::symlink_metadata(&resolved.path)
        .map_err(lost)?
        .file_type()
        .is_symlink();
    let real_path = if is_link {
        resolved.path.canonicalize().map_err(lost)?
    } else {
        resolved.path.clone()
    };
    if real_path.parent() != Some(job_dir.as_path()) {
        return Err(OpenError::Refused("file resolves outside its job folder"));
    }
    let real_name = real_path.file_name().and_then(|n| n.to_str());
    if real_name.and_then(file_kind) != Some(resolved.kind) {
        return Err(OpenError::Refused(
            "file resolves to a name that is not served",
        ));
    }
    // Not a link a moment ago: if it became one since, the open fails instead of following it.
    let no_follow = if is_link { 0 } else { libc::O_NOFOLLOW };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(no_follow)
        .open(&real_path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                OpenError::NotFound
            }
            _ if e.raw_os_error() == Some(libc::ELOOP) => OpenError::NotFound,
            _ => OpenError::Io(e),
        })?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotFound);
    }
    let len = meta.len();
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let contents = if len <= read_up_to {
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).map_err(OpenError::Io)?;
        Some(Bytes::from(buf))
    } else {
        None
    };
    Ok(Opened {
        file,
        contents,
        len,
        etag: format!("\"{len:x}-{mtime_ns:x}\""),
        real_path,
    })
}

/// The filter: `GET`/`HEAD`/`OPTIONS` on `/hls/{job}/{file}`. Every request whose first path
/// segment is `hls` is answered here (200, 206, 204, 304, 404, 405, 416 or 500, all with CORS
/// headers); any other request is rejected with warp's plain not-found rejection, so it can be
/// combined with other routes by `.or()` in any order.
pub fn routes(hls_root: PathBuf) -> BoxedFilter<(Response,)> {
    let root = Arc::new(hls_root.canonicalize().unwrap_or(hls_root));
    warp::path(PREFIX)
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .then(move |tail: Tail, method: Method, headers: HeaderMap| {
            let root = root.clone();
            async move { handle(&root, tail.as_str(), &method, &headers).await }
        })
        .boxed()
}

/// One request under `/hls/`: `tail` is the raw (still percent-encoded) path after `/hls/`.
pub async fn handle(hls_root: &Path, tail: &str, method: &Method, headers: &HeaderMap) -> Response {
    if method == Method::OPTIONS {
        return preflight();
    }
    if method != Method::GET && method != Method::HEAD {
        let mut resp = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only GET, HEAD and OPTIONS are served here",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW_METHODS));
        return resp;
    }
    let Some(resolved) = parse_tail(tail).and_then(|(job, file)| resolve(hls_root, &job, &file))
    else {
        tracing::debug!(tail, "hls: refused request path");
        return not_found();
    };
    serve(hls_root, &resolved, method, headers).await
}

/// How much of a file to read when opening it: a HEAD sends no body.
pub fn body_to_read(method: &Method) -> u64 {
    if method == Method::GET {
        READ_WHOLE
    } else {
        0
    }
}

/// [`open_confined`] then [`respond`], mapping failures to 404 (or 500 for odd I/O errors).
pub async fn serve(
    hls_root: &Path,
    resolved: &Resolved,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    match open_confined(hls_root, resolved, body_to_read(method)).await {
        Ok(opened) => respond(opened, resolved.kind, method, headers).await,
        Err(OpenError::NotFound) => not_found(),
        Err(OpenError::Refused(why)) => {
            tracing::warn!(path = %resolved.path.display(), why, "hls: refused file");
            not_found()
        }
        Err(OpenError::Io(e)) => io_error(&resolved.path, &e),
    }
}

/// The answer for an opened file: 200 (or 206 for a satisfiable single byte range on GET, 304
/// when `If-None-Match` matches, 416 for an unsatisfiable range); HEAD gets the headers GET would
/// get without a `Range` header, and no body.
pub async fn respond(opened: Opened, kind: FileKind, method: &Method, req: &HeaderMap) -> Response {
    let mut base = HeaderMap::new();
    set_cors(&mut base);
    put(&mut base, header::CACHE_CONTROL, kind.cache_control());
    put(&mut base, header::ETAG, &opened.etag);
    put(&mut base, header::ACCEPT_RANGES, "bytes");

    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if etag_list_matches(inm, &opened.etag) {
            return build(StatusCode::NOT_MODIFIED, base, Body::empty());
        }
    }
    put(&mut base, header::CONTENT_TYPE, kind.content_type());

    let len = opened.len;
    let range = if method == Method::GET {
        let if_range_ok = req
            .get(header::IF_RANGE)
            .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == opened.etag));
        match req.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            Some(value) if if_range_ok => parse_range(value, len),
            _ => ByteRange::Full,
        }
    } else {
        ByteRange::Full
    };
    let (status, start, count) = match range {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Partial(start, end) => {
            put(
                &mut base,
                header::CONTENT_RANGE,
                &format!("bytes {start}-{end}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        ByteRange::Unsatisfiable => {
            let mut resp = json_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "the requested range is outside the file",
            );
            let h = resp.headers_mut();
            put(h, header::CONTENT_RANGE, &format!("bytes */{len}"));
            put(h, header::ACCEPT_RANGES, "bytes");
            return resp;
        }
    };
    put(&mut base, header::CONTENT_LENGTH, &count.to_string());
    if method == Method::HEAD || count == 0 {
        return build(status, base, Body::empty());
    }
    if let Some(contents) = &opened.contents {
        let range = start as usize..(start + count) as usize;
        return build(status, base, Body::from(contents.slice(range)));
    }
    build(status, base, stream_body(opened, start, count))
}

/// Sends `count` bytes of the file from `start` through a channel body, chunk by chunk, from a
/// spawned task; the body is aborted (the connection sees an error) if the file turns out shorter
/// or a read fails.
fn stream_body(opened: Opened, start: u64, count: u64) -> Body {
    let (mut tx, body) = Body::channel();
    let Opened {
        file, real_path, ..
    } = opened;
    let mut file = tokio::fs::File::from_std(file);
    tokio::spawn(async move {
        if start > 0 {
            if let Err(e) = file.seek(SeekFrom::Start(start)).await {
                tracing::warn!(path = %real_path.display(), error = %e, "hls: seek failed");
                tx.abort();
                return;
            }
        }
        let mut left = count;
        while left > 0 {
            let mut buf = vec![0u8; left.min(CHUNK as u64) as usize];
            match file.read(&mut buf).await {
                Ok(0) => {
                    tracing::warn!(path = %real_path.display(), "hls: file shorter than announced");
                    tx.abort();
                    return;
                }
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.send_data(Bytes::from(buf)).await.is_err() {
                        return; // the client went away
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %real_path.display(), error = %e, "hls: read failed");
                    tx.abort();
                    return;
                }
            }
        }
    });
    body
}

/// The outcome of a `Range` header against a file of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable range (absent, malformed, several ranges, not `bytes`): send the whole file.
    Full,
    /// Inclusive first and last byte.
    Partial(u64, u64),
    /// Well-formed but outside the file: 416.
    Unsatisfiable,
}

/// Parses a `Range` header value for one byte range (`a-b`, `a-`, `-n`). Malformed values and
/// multiple ranges are ignored ([`ByteRange::Full`]), as RFC 9110 §14.2 allows.
pub fn parse_range(value: &str, len: u64) -> ByteRange {
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return ByteRange::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last n bytes.
        return match num(last) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if len == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial(len.saturating_sub(n), len - 1),
        };
    }
    let Some(start) = num(first) else {
        return ByteRange::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(end) if end >= start => end,
            _ => return ByteRange::Full,
        }
    };
    if start >= len {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Partial(start, end.min(len - 1))
}

/// `If-None-Match` against our ETag (weak comparison, `*` matches any existing file).
fn etag_list_matches(list: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

fn put(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Adds the CORS headers every response of this filter carries.
pub fn set_cors(headers: &mut HeaderMap) {
    let static_headers: [(HeaderName, &'static str); 5] = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS),
        (header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS),
        (header::ACCESS_CONTROL_MAX_AGE, MAX_AGE),
    ];
    for (name, value) in static_headers {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn build(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// 204 with the CORS headers: the answer to any OPTIONS under `/hls/`.
pub fn preflight() -> Response {
    let mut headers = HeaderMap::new();
    set_cors(&mut headers);
    build(StatusCode::NO_CONTENT, headers, Body::empty())
}

/// A small JSON error body `{"error": code, "message": message}` with the CORS headers.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_answer(
        status,
        serde_json::json!({ "error": code, "message": message }),
    )
}

/// A JSON body with the headers of every HLS answer (CORS, never cached).
pub fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    let body = body.to_string();
    let mut headers = HeaderMap::new();
    set_cors(&mut headers);
    put(&mut headers, header::CONTENT_TYPE, "application/json");
    put(&mut headers, header::CACHE_CONTROL, "no-cache");
    put(
        &mut headers,
        header::CONTENT_LENGTH,
        &body.len().to_string(),
    );
    build(status, headers, Body::from(body))
}

/// The 404 for anything missing or refused (the same answer for both, on purpose).
pub fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such HLS file; expected /hls/{job}/{file}",
    )
}

fn io_error(path: &Path, e: &std::io::Error) -> Response {
    tracing::warn!(path = %path.display(), error = %e, "hls: I/O error");
    let mut message = String::from("could not read the file");
    let _ = write!(message, " ({})", e.kind());
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "io_error", &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use warp::http::Response as HttpResponse;

    const PLAYLIST: &str =
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nsegment_00000.ts\n";

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        segment: Vec<u8>,
        big: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("hls");
        let a = root.join("job-a");
        let b = root.join("job_B");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let segment: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let big: Vec<u8> = (0..(3 * CHUNK + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        fs::write(a.join("stream.m3u8"), PLAYLIST).unwrap();
        fs::write(a.join("index.m3u8"), PLAYLIST).unwrap();
        fs::write(a.join("segment_00000.ts"), &segment).unwrap();
        fs::write(a.join("segment_00001.ts"), &big).unwrap();
        fs::write(a.join("poster.jpg"), b"\xff\xd8\xff jpeg").unwrap();
        fs::write(a.join("thumb.png"), b"\x89PNG png").unwrap();
        fs::write(a.join("job.json"), b"{\"state\":\"running\"}").unwrap();
        fs::write(a.join("segment_00002.tmp.ts"), b"partial").unwrap();
        fs::write(a.join("stream.tmp.m3u8"), b"partial").unwrap();
        fs::write(a.join("segment_00003.TMP.ts"), b"partial").unwrap();
        fs::write(a.join("segment_00004.ts.tmp"), b"partial").unwrap();
        fs::write(a.join(".hidden.ts"), b"hidden").unwrap();
        fs::write(a.join("empty.ts"), b"").unwrap();
        fs::create_dir_all(a.join("dir.ts")).unwrap();
        fs::create_dir_all(a.join("sub")).unwrap();
        fs::write(a.join("sub").join("stream.m3u8"), PLAYLIST).unwrap();
        fs::write(b.join("stream.m3u8"), "SECRET-B").unwrap();
        fs::write(b.join("segment_00000.ts"), "SECRET-B-SEGMENT").unwrap();
        // Folders a naive server would happily serve from, with bad job ids.
        for bad in ["job.x", &"j".repeat(MAX_JOB_LEN + 1), "job x"] {
            fs::create_dir_all(root.join(bad)).unwrap();
            fs::write(root.join(bad).join("stream.m3u8"), PLAYLIST).unwrap();
        }
        fs::write(tmp.path().join("secret.ts"), "OUTSIDE").unwrap();
        fs::write(tmp.path().join("stream.m3u8"), "OUTSIDE").unwrap();
        fs::create_dir_all(tmp.path().join("elsewhere")).unwrap();
        fs::write(tmp.path().join("elsewhere").join("stream.m3u8"), "OUTSIDE").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink(tmp.path().join("secret.ts"), a.join("link_out.ts")).unwrap();
            symlink("../../secret.ts", a.join("link_rel_out.ts")).unwrap();
            symlink(b.join("segment_00000.ts"), a.join("link_other_job.ts")).unwrap();
            symlink("job.json", a.join("link_json.ts")).unwrap();
            symlink("segment_00002.tmp.ts", a.join("link_tmp.ts")).unwrap();
            symlink("segment_00000.ts", a.join("link_in.ts")).unwrap();
            symlink(tmp.path().join("elsewhere"), root.join("job-out")).unwrap();
            symlink(&b, root.join("job-link")).unwrap();
        }
        Fixture {
            _tmp: tmp,
            root,
            segment,
            big,
        }
    }

    async fn request(
        f: &Fixture,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> HttpResponse<Bytes> {
        let mut req = warp::test::request().method(method).path(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.reply(&routes(f.root.clone())).await
    }

    async fn get(f: &Fixture, path: &str) -> HttpResponse<Bytes> {
        request(f, "GET", path, &[]).await
    }

    fn h<'a>(resp: &'a HttpResponse<Bytes>, name: &str) -> &'a str {
        resp.headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", resp.headers()))
            .to_str()
            .unwrap()
    }

    fn assert_cors(resp: &HttpResponse<Bytes>) {
        assert_eq!(h(resp, "access-control-allow-origin"), "*");
        assert_eq!(
            h(resp, "access-control-allow-methods"),
            "GET, HEAD, OPTIONS"
        );
        assert_eq!(
            h(resp, "access-control-allow-headers"),
            "Range, Content-Type, X-Playback-Session-Id, X-Liveup-Token"
        );
        assert_eq!(
            h(resp, "access-control-expose-headers"),
            "Content-Length, Content-Range, Accept-Ranges"
        );
        assert_eq!(h(resp, "access-control-max-age"), "86400");
    }

    fn assert_not_found(resp: &HttpResponse<Bytes>, what: &str) {
        assert_eq!(
            resp.status(),
            StatusCode::NOT_FOUND,
            "{what}: {:?}",
            resp.body()
        );
        assert_cors(resp);
        assert_eq!(h(resp, "content-type"), "application/json");
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(body["error"], "not_found", "{what}");
        assert!(body["message"].is_string(), "{what}");
    }

    #[tokio::test]
    async fn playlist_headers_and_body() {
        let f = fixture();
        for path in ["/hls/job-a/stream.m3u8", "/hls/job-a/index.m3u8"] {
            let resp = get(&f, path).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(h(&resp, "content-type"), "application/vnd.apple.mpegurl");
            assert_eq!(h(&resp, "cache-control"), "no-cache");
            assert_eq!(h(&resp, "content-length"), PLAYLIST.len().to_string());
            assert_eq!(h(&resp, "accept-ranges"), "bytes");
            assert!(h(&resp, "etag").starts_with('"'));
            assert_cors(&resp);
            assert_eq!(resp.body().as_ref(), PLAYLIST.as_bytes());
        }
        // A query string (a cache buster, a token) does not change anything.
        let resp = get(&f, "/hls/job-a/stream.m3u8?t=1&token=x").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.body().as_ref(), PLAYLIST.as_bytes());
        // Other job, underscores and capitals in the id.
        let resp = get(&f, "/hls/job_B/stream.m3u8").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.body().as_ref(), b"SECRET-B");
    }

    #[tokio::test]
    async fn segment_headers_and_body() {
        let f = fixture();
        let resp = get(&f, "/hls/job-a/segment_00000.ts").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(h(&resp, "content-type"), "video/mp2t");
        assert_eq!(
            h(&resp, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(h(&resp, "content-length"), "1000");
        assert_eq!(h(&resp, "accept-ranges"), "bytes");
        assert_cors(&resp);
        assert_eq!(resp.body().as_ref(), &f.segment[..]);

        // Larger than one chunk: streamed through the channel body.
        let resp = get(&f, "/hls/job-a/segment_00001.ts").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(h(&resp, "content-length"), f.big.len().to_string());
        assert_eq!(resp.body().len(), f.big.len());
        assert!(resp.body().as_ref() == &f.big[..]);

        // A symlink to another file of the same folder is fine.
        #[cfg(unix)]
        {
            let resp = get(&f, "/hls/job-a/link_in.ts").await;
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.body().as_ref(), &f.segment[..]);
        }

        let resp = get(&f, "/hls/job-a/empty.ts").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(h(&resp, "content-length"), "0");
        assert!(resp.body().is_empty());
    }

    #[tokio::test]
    async fn image_headers() {
        let f = fixture();
        let resp = get(&f, "/hls/job-a/poster.jpg").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(h(&resp, "content-type"), "image/jpeg");
        assert_eq!(h(&resp, "cache-control"), "no-cache");
        assert_cors(&resp);
        let resp = get(&f, "/hls/job-a/thumb.png").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(h(&resp, "content-type"), "image/png");
        assert_eq!(resp.body().as_ref(), b"\x89PNG png");
    }

    #[tokio::test]
    async fn head_has_get_headers_and_no_body() {
        let f = fixture();
        for path in [
            "/hls/job-a/stream.m3u8",
            "/hls/job-a/segment_00000.ts",
            "/hls/job-a/segment_00001.ts",
        ] {
            let g = get(&f, path).await;
            let hd = request(&f, "HEAD", path, &[]).await;
            assert_eq!(hd.status(), StatusCode::OK, "{path}");
            assert!(hd.body().is_empty(), "{path}: HEAD has a body");
            assert_eq!(g.headers(), hd.headers(), "{path}");
            assert_eq!(h(&hd, "content-length"), g.body().len().to_string());
        }
        // HEAD ignores Range: the headers are those of the whole file.
        let hd = request(
            &f,
            "HEAD",
            "/hls/job-a/segment_00000.ts",
            &[("range", "bytes=0-9")],
        )
        .await;
        assert_eq!(hd.status(), StatusCode::OK);
        assert_eq!(h(&hd, "content-length"), "1000");
        let hd = request(&f, "HEAD", "/hls/job-a/missing.ts", &[]).await;
        assert_eq!(hd.status(), StatusCode::NOT_FOUND);
        assert_cors(&hd);
    }

    #[tokio::test]
    async fn options_preflight() {
        let f = fixture();
        for path in [
            "/hls/job-a/segment_00000.ts",
            "/hls/job-a/missing.ts",
            "/hls/whatever",
        ] {
            let resp = request(
                &f,
                "OPTIONS",
                path,
                &[
                    ("origin", "http://jellyfin.local:8096"),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "range"),
                ],
            )
            .await;
            assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
            assert_cors(&resp);
            assert!(resp.body().is_empty());
        }
    }

    #[tokio::test]
    async fn other_methods_get_405_with_cors() {
        let f = fixture();
        for method in ["POST", "PUT", "DELETE"] {
            let resp = request(&f, method, "/hls/job-a/segment_00000.ts", &[]).await;
            assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(h(&resp, "allow"), "GET, HEAD, OPTIONS");
            assert_cors(&resp);
        }
        assert!(f.root.join("job-a/segment_00000.ts").exists());
    }

    #[tokio::test]
    async fn ranges() {
        let f = fixture();
        let seg = "/hls/job-a/segment_00000.ts";
        let resp = request(&f, "GET", seg, &[("range", "bytes=2-5")]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(h(&resp, "content-range"), "bytes 2-5/1000");
        assert_eq!(h(&resp, "content-length"), "4");
        assert_eq!(h(&resp, "content-type"), "video/mp2t");
        assert_cors(&resp);
        assert_eq!(resp.body().as_ref(), &f.segment[2..6]);

        let resp = request(&f, "GET", seg, &[("range", "bytes=990-")]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(h(&resp, "content-range"), "bytes 990-999/1000");
        assert_eq!(resp.body().as_ref(), &f.segment[990..]);

        let resp = request(&f, "GET", seg, &[("range", "bytes=-3")]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(h(&resp, "content-range"), "bytes 997-999/1000");
        assert_eq!(resp.body().as_ref(), &f.segment[997..]);

        let resp = request(&f, "GET", seg, &[("range", "bytes=500-5000")]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(h(&resp, "content-range"), "bytes 500-999/1000");
        assert_eq!(resp.body().as_ref(), &f.segment[500..]);

        // A range of the streamed file, across chunk boundaries.
        let (a, b) = (CHUNK - 10, 2 * CHUNK + 20);
        let value = format!("bytes={a}-{b}");
        let resp = request(
            &f,
            "GET",
            "/hls/job-a/segment_00001.ts",
            &[("range", &value)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            h(&resp, "content-range"),
            format!("bytes {a}-{b}/{}", f.big.len())
        );
        assert!(resp.body().as_ref() == &f.big[a..=b]);

        // Outside the file: 416 with the length, CORS.
        let resp = request(&f, "GET", seg, &[("range", "bytes=1000-")]).await;
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(h(&resp, "content-range"), "bytes */1000");
        assert_cors(&resp);

        // Several ranges, malformed ones, a stale If-Range: the whole file.
        for (range, if_range) in [
            ("bytes=0-1,5-6", None),
            ("bytes=5-2", None),
            ("items=0-5", None),
            ("bytes=abc", None),
            ("bytes=0-5", Some("\"stale\"")),
        ] {
            let mut headers = vec![("range", range)];
            if let Some(v) = if_range {
                headers.push(("if-range", v));
            }
            let resp = request(&f, "GET", seg, &headers).await;
            assert_eq!(resp.status(), StatusCode::OK, "{range} {if_range:?}");
            assert_eq!(resp.body().as_ref(), &f.segment[..]);
        }
        // A current If-Range: the range.
        let etag = h(&get(&f, seg).await, "etag").to_owned();
        let resp = request(
            &f,
            "GET",
            seg,
            &[("range", "bytes=0-0"), ("if-range", &etag)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(resp.body().as_ref(), &f.segment[..1]);
    }

    #[tokio::test]
    async fn if_none_match_gives_304() {
        let f = fixture();
        let path = "/hls/job-a/stream.m3u8";
        let etag = h(&get(&f, path).await, "etag").to_owned();
        let resp = request(&f, "GET", path, &[("if-none-match", &etag)]).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert!(resp.body().is_empty());
        assert_eq!(h(&resp, "etag"), etag);
        assert_cors(&resp);
        let resp = request(&f, "GET", path, &[("if-none-match", "\"other\"")]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        // The playlist changes (same second, other length): the old tag no longer matches.
        fs::write(
            f.root.join("job-a/stream.m3u8"),
            format!("{PLAYLIST}#EXT-X-ENDLIST\n"),
        )
        .unwrap();
        let resp = request(&f, "GET", path, &[("if-none-match", &etag)]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.body().ends_with(b"#EXT-X-ENDLIST\n"));
    }

    #[tokio::test]
    async fn missing_and_refused_are_404_with_cors() {
        let f = fixture();
        let cases = [
            ("/hls/job-a/segment_00099.ts", "missing segment"),
            ("/hls/job-zzz/stream.m3u8", "missing job"),
            ("/hls/job-a/../job_B/stream.m3u8", "raw .."),
            (
                "/hls/job-a/..%2fjob_B%2fstream.m3u8",
                "encoded slash after ..",
            ),
            ("/hls/job-a/%2e%2e%2fjob_B%2fstream.m3u8", "%2e%2e%2f"),
            (
                "/hls/job-a/%2E%2E%2Fjob_B%2Fstream.m3u8",
                "upper-case %2E%2E%2F",
            ),
            (
                "/hls/job-a/%2e%2e%5cjob_B%5cstream.m3u8",
                "encoded backslashes",
            ),
            ("/hls/job-a/..%5c..%5csecret.ts", "backslash to outside"),
            (
                "/hls/job-a/sub%2fstream.m3u8",
                "encoded slash into a subfolder",
            ),
            ("/hls/job-a/sub/stream.m3u8", "subfolder"),
            (
                "/hls/%2e%2e/stream.m3u8",
                "job id .. (file right outside the root)",
            ),
            ("/hls/job-a/%2e%2e", "file .."),
            ("/hls/job-a/.", "file ."),
            ("/hls/job-a/stream.m3u8%00", "NUL"),
            ("/hls/job-a/stream.m3u8%00.ts", "NUL inside"),
            ("/hls/job-a/job.json", "job.json"),
            ("/hls/job-a/segment_00002.tmp.ts", ".tmp. segment"),
            ("/hls/job-a/segment_00003.TMP.ts", ".TMP. segment"),
            ("/hls/job-a/stream.tmp.m3u8", ".tmp. playlist"),
            ("/hls/job-a/segment_00004.ts.tmp", "*.tmp"),
            ("/hls/job-a/.hidden.ts", "leading dot"),
            ("/hls/job-a/dir.ts", "a folder"),
            ("/hls/job.x/stream.m3u8", "dot in job id"),
            ("/hls/job%20x/stream.m3u8", "space in job id"),
            ("/hls/job%2ex/stream.m3u8", "encoded dot in job id"),
            ("/hls/job-a%2fsub/stream.m3u8", "encoded slash in job id"),
            ("/hls/job-a", "no file"),
            ("/hls/job-a/", "empty file"),
            ("/hls", "bare prefix"),
            ("/hls/", "prefix with slash"),
            ("/hls//job-a/stream.m3u8", "double slash"),
            ("/hls/job-a//stream.m3u8", "double slash before file"),
            ("/hls/job-a/stream.m3u8/", "trailing slash"),
            ("/hls/job-a/stream.m3u8/x", "three segments"),
            ("/hls/job-a/%ff.ts", "invalid UTF-8"),
            ("/hls/job-a/stream.M3U8", "upper-case extension"),
            ("/hls/job-a/run.sh", "other extension"),
        ];
        for (path, what) in cases {
            assert_not_found(&get(&f, path).await, what);
        }
        let long = format!("/hls/{}/stream.m3u8", "j".repeat(MAX_JOB_LEN + 1));
        assert_not_found(&get(&f, &long).await, "job id too long");
        let longest = format!("/hls/{}/stream.m3u8", "j".repeat(MAX_JOB_LEN));
        assert_not_found(&get(&f, &longest).await, "job id of 64, missing");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_out_of_the_job_folder_are_404() {
        let f = fixture();
        // The targets are real files, so a server that only checks names would serve them.
        assert!(f.root.parent().unwrap().join("secret.ts").is_file());
        for (path, what) in [
            ("/hls/job-a/link_out.ts", "absolute link outside the root"),
            (
                "/hls/job-a/link_rel_out.ts",
                "relative link outside the root",
            ),
            ("/hls/job-a/link_other_job.ts", "link into another job"),
            ("/hls/job-a/link_json.ts", "link to job.json"),
            ("/hls/job-a/link_tmp.ts", "link to a .tmp file"),
            ("/hls/job-out/stream.m3u8", "job folder linking outside"),
            (
                "/hls/job-link/stream.m3u8",
                "job folder linking to another job",
            ),
        ] {
            let resp = get(&f, path).await;
            assert_not_found(&resp, what);
            assert!(!resp
                .body()
                .windows(7)
                .any(|w| w == b"OUTSIDE" || w == b"SECRET-"));
        }
    }

    #[tokio::test]
    async fn other_paths_are_rejected_not_answered() {
        let f = fixture();
        let filter = routes(f.root.clone());
        for path in [
            "/",
            "/health",
            "/hlsx/job-a/stream.m3u8",
            "/x/hls/job-a/stream.m3u8",
        ] {
            let rejection = warp::test::request()
                .path(path)
                .filter(&filter)
                .await
                .err()
                .unwrap_or_else(|| panic!("{path} was answered"));
            assert!(rejection.is_not_found(), "{path}: {rejection:?}");
        }
        // Combines with other routes, in either order.
        let other = warp::path("health").map(|| "ok");
        let both = routes(f.root.clone()).or(other);
        let resp = warp::test::request().path("/health").reply(&both).await;
        assert_eq!(resp.body().as_ref(), b"ok");
        let resp = warp::test::request()
            .path("/hls/job-a/stream.m3u8")
            .reply(&both)
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let both = warp::path("health").map(|| "ok").or(routes(f.root.clone()));
        let resp = warp::test::request()
            .path("/hls/job-a/nope.ts")
            .reply(&both)
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_cors(&resp);
    }

    #[test]
    fn lexical_rules() {
        let root = Path::new("/srv/hls");
        let r = resolve(root, "abc_DEF-123", "segment_00042.ts").unwrap();
        assert_eq!(r.path, Path::new("/srv/hls/abc_DEF-123/segment_00042.ts"));
        assert_eq!(r.kind, FileKind::Segment);
        assert_eq!(
            resolve(root, "a", "stream.m3u8").unwrap().kind,
            FileKind::Playlist
        );
        assert!(resolve(root, &"a".repeat(64), "x.ts").is_some());
        for (job, file) in [
            ("", "x.ts"),
            (&"a".repeat(65) as &str, "x.ts"),
            ("a.b", "x.ts"),
            ("..", "x.ts"),
            ("a/b", "x.ts"),
            ("a\\b", "x.ts"),
            ("a\0", "x.ts"),
            ("a", ""),
            ("a", ".."),
            ("a", "../x.ts"),
            ("a", "..\\x.ts"),
            ("a", "x/y.ts"),
            ("a", "x\0.ts"),
            ("a", "a..b.ts"),
            ("a", ".x.ts"),
            ("a", "job.json"),
            ("a", "x.tmp"),
            ("a", "x.tmp.ts"),
            ("a", "x.ts.tmp"),
            ("a", "x.json"),
            ("a", "x"),
            ("a", "é.ts"),
            ("a", &format!("{}.ts", "x".repeat(MAX_FILE_LEN))),
        ] {
            assert!(resolve(root, job, file).is_none(), "{job:?} {file:?}");
        }
        assert_eq!(
            parse_tail("job/%2e%2e%2fx.ts"),
            Some(("job".into(), "../x.ts".into()))
        );
        assert_eq!(parse_tail("job"), None);
        assert_eq!(parse_tail("a/b/c"), None);
        assert_eq!(parse_tail("a/%ff"), None);
    }

    #[test]
    fn range_parsing() {
        use ByteRange::*;
        assert_eq!(parse_range("bytes=0-0", 10), Partial(0, 0));
        assert_eq!(parse_range("bytes=0-", 10), Partial(0, 9));
        assert_eq!(parse_range("bytes=3-100", 10), Partial(3, 9));
        assert_eq!(parse_range("bytes=-4", 10), Partial(6, 9));
        assert_eq!(parse_range("bytes=-40", 10), Partial(0, 9));
        assert_eq!(parse_range("Bytes = 1-2", 10), Partial(1, 2));
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 10), Full);
        assert_eq!(parse_range("bytes=1-2,4-5", 10), Full);
        assert_eq!(parse_range("bytes=-", 10), Full);
        assert_eq!(parse_range("bytes=+1-2", 10), Full);
        assert_eq!(parse_range("bytes", 10), Full);
        assert_eq!(parse_range("pages=1-2", 10), Full);
        assert_eq!(parse_range("bytes=99999999999999999999999-", 10), Full);
    }

    #[test]
    fn etag_matching() {
        assert!(etag_list_matches("\"a-1\"", "\"a-1\""));
        assert!(etag_list_matches("W/\"a-1\"", "\"a-1\""));
        assert!(etag_list_matches("\"x\", \"a-1\"", "\"a-1\""));
        assert!(etag_list_matches("*", "\"a-1\""));
        assert!(!etag_list_matches("\"a-2\"", "\"a-1\""));
    }
}
