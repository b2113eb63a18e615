//! What viewers of a daemon job get under `/hls/{job}/`: the playlists liveup writes from the
//! segments made (`index.m3u8`, the whole film up front; `stream.m3u8`, the growing one) and
//! segments that may not be made yet. Every request refreshes the viewer's session. A segment
//! not made yet is waited for (bounded; woken the moment it lands), then answered 503 with
//! Retry-After — never a 2xx without the segment (hls.js would play the body) and never a 404
//! (hls.js would not retry). A job that failed or was cancelled answers 410 with its error, for
//! good: hls.js (1.7) fails at once on a first playlist load that gets a 4xx, but with a single
//! rendition it retries a playlist reload twice and a VOD fragment six times with back-off
//! (about 30 s) before giving up, and skips a live fragment as a gap; the browser script stops it
//! on the first 410 instead.
//!
//! With a ladder: `master.m3u8?profile=phone` lists the top rung and the lower rungs that are
//! ready (asking for the profile starts making the missing ones), and each lower rung has its own
//! `index.480p.m3u8`, `stream.480p.m3u8` and `segment_00042.480p.ts`, served the same way (a rung
//! segment not made yet is made next and waited for).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::hls_files::{self, FileKind};
use super::AppState;
use crate::config::SegmentFormat;
use crate::hls::dash;
use crate::hls::write;
use crate::job_dir::{
    cmaf_segment_index, is_track, rung_segment_index, segment_index, AUDIO_TRACK,
};
use crate::jobs::variants::{Ladder, RungSegment, VariantError};
use crate::jobs::{JobState, SegmentState};

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || Arc::clone(&state));
    warp::path!("hls" / String / String)
        .and(warp::get().or(warp::head()).unify())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(super::viewer())
        .and(with_state)
        .and_then(handle)
        .boxed()
}

/// What a file name under `/hls/{job}/` asks for.
#[derive(Debug, PartialEq)]
enum Asked {
    Master,
    Dash,
    Playlist {
        rung: Option<String>,
        live: bool,
    },
    Segment {
        rung: Option<String>,
        index: u32,
    },
    /// A CMAF track's playlist (`video.480p.m3u8`, `audio.m3u8`).
    TrackPlaylist {
        track: String,
    },
    TrackSegment {
        track: String,
        index: u32,
    },
    TrackInit {
        track: String,
    },
}

fn asked(file: &str) -> Option<Asked> {
    match file {
        "master.m3u8" => return Some(Asked::Master),
        "stream.mpd" => return Some(Asked::Dash),
        "audio.m3u8" => {
            let track = AUDIO_TRACK.to_string();
            return Some(Asked::TrackPlaylist { track });
        }
        _ => {}
    }
    if let Some((index, track)) = cmaf_segment_index(file) {
        return Some(Asked::TrackSegment { track, index });
    }
    if let Some(track) = file
        .strip_prefix("init.")
        .and_then(|rest| rest.strip_suffix(".mp4"))
        .filter(|track| is_track(track))
    {
        let track = track.to_string();
        return Some(Asked::TrackInit { track });
    }
    if let Some(rung) = file
        .strip_prefix("video.")
        .and_then(|rest| rest.strip_suffix(".m3u8"))
        .filter(|rung| crate::ladder::height_of(rung).is_some())
    {
        let track = rung.to_string();
        return Some(Asked::TrackPlaylist { track });
    }
    if let Some(index) = segment_index(file) {
        return Some(Asked::Segment { rung: None, index });
    }
    if let Some((index, rung)) = rung_segment_index(file) {
        let rung = Some(rung);
        return Some(Asked::Segment { rung, index });
    }
    let (kind, rest) = file.strip_suffix(".m3u8")?.split_once('.').map_or_else(
        || (file.strip_suffix(".m3u8").unwrap_or(file), None),
        |(kind, rung)| (kind, Some(rung)),
    );
    let live = match kind {
        "index" => false,
        "stream" => true,
        _ => return None,
    };
    match rest {
        None => Some(Asked::Playlist { rung: None, live }),
        Some(rung) => {
            crate::ladder::height_of(rung)?;
            let rung = Some(rung.to_string());
            Some(Asked::Playlist { rung, live })
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    job: String,
    file: String,
    query: HashMap<String, String>,
    method: Method,
    headers: HeaderMap,
    viewer: String,
    state: Arc<AppState>,
) -> Result<Response, Rejection> {
    let asked = asked(&file);
    let mut outcome = state.manager.outcome(&job);
    if outcome.is_none() && asked.is_some() {
        // Another host may have made the job a moment ago.
        let (manager, id) = (Arc::clone(&state.manager), job.clone());
        outcome = tokio::task::spawn_blocking(move || manager.look_up(&id))
            .await
            .ok()
            .flatten();
    }
    let Some(outcome) = outcome.filter(|_| asked.is_some()) else {
        return Err(warp::reject::not_found());
    };
    let asked = asked.expect("checked above");
    if let Some(gone) = ended(outcome) {
        return Ok(gone);
    }
    let cmaf = state.config.segment_format == SegmentFormat::Fmp4;
    let (wants_cmaf, wants_ts_rung) = match &asked {
        Asked::Dash
        | Asked::TrackPlaylist { .. }
        | Asked::TrackSegment { .. }
        | Asked::TrackInit { .. } => (true, false),
        Asked::Playlist { rung: Some(_), .. } | Asked::Segment { rung: Some(_), .. } => {
            (false, true)
        }
        _ => (false, false),
    };
    if (wants_cmaf && !cmaf) || (wants_ts_rung && cmaf) {
        return Ok(hls_files::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "this liveup writes its ladder as {} (segment_format)",
                state.config.segment_format
            ),
        ));
    }
    if let Asked::Playlist {
        rung: Some(rung), ..
    }
    | Asked::Segment {
        rung: Some(rung), ..
    }
    | Asked::TrackPlaylist { track: rung }
    | Asked::TrackSegment { track: rung, .. }
    | Asked::TrackInit { track: rung } = &asked
    {
        let known = match state.variants.knows(&job, rung) {
            Some(known) => known,
            // The first question about a job's rungs reads its folder.
            None => {
                let variants = Arc::clone(&state.variants);
                let (id, name) = (job.clone(), rung.clone());
                tokio::task::spawn_blocking(move || variants.has_rung(&id, &name))
                    .await
                    .unwrap_or(false)
            }
        };
        if !known {
            return Ok(hls_files::not_found());
        }
    }
    let segment = match &asked {
        Asked::Segment { index, .. } | Asked::TrackSegment { index, .. } => Some(*index),
        _ => None,
    };
    let session = state.manager.viewer_request(&job, &viewer, segment);
    let mut reply = match asked {
        Asked::Master => {
            ladder_reply(&state, &job, query.get("profile"), &method, Manifest::Hls).await
        }
        Asked::Dash => {
            ladder_reply(&state, &job, query.get("profile"), &method, Manifest::Dash).await
        }
        Asked::TrackPlaylist { track } => {
            playlist_reply(&state, &job, Some(&track), true, false, &method).await
        }
        Asked::TrackSegment { track, index } => {
            rung_segment_reply(&state, &job, &file, &track, index, &method, &headers).await
        }
        Asked::TrackInit { track } => {
            init_reply(&state, &job, &file, &track, &method, &headers).await
        }
        Asked::Segment { rung: None, index } => {
            segment_reply(&state, &job, &file, index, &method, &headers).await
        }
        Asked::Segment {
            rung: Some(rung),
            index,
        } => rung_segment_reply(&state, &job, &file, &rung, index, &method, &headers).await,
        Asked::Playlist { rung, live } => {
            playlist_reply(&state, &job, rung.as_deref(), false, live, &method).await
        }
    };
    if let Some(session) = session.and_then(|s| HeaderValue::from_str(&s).ok()) {
        reply.headers_mut().insert("x-liveup-session", session);
    }
    Ok(reply)
}

/// The film's length and segment count; `Err` is the answer to send instead.
async fn timeline(state: &Arc<AppState>, job: &str) -> Result<(f64, u32), Response> {
    let timeline = match state.manager.known_timeline(job) {
        Some(known) => Some(known),
        // The first question about a job probes its source.
        None => {
            let manager = Arc::clone(&state.manager);
            let id = job.to_string();
            tokio::task::spawn_blocking(move || manager.timeline(&id).ok())
                .await
                .ok()
                .flatten()
        }
    };
    // The job's run meets the same problem and fails it; the retry then gets the 410.
    timeline.ok_or_else(|| not_ready("not_ready", "the source could not be read yet"))
}

fn not_ready(code: &str, message: &str) -> Response {
    let mut response = hls_files::json_error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// A rung's playlist (the upscaled one's for `rung: None`), MPEG-TS or a CMAF track's: the
/// whole film (VOD), or `live`, the segments made without a gap from the start.
async fn playlist_reply(
    state: &Arc<AppState>,
    job: &str,
    rung: Option<&str>,
    cmaf: bool,
    live: bool,
    method: &Method,
) -> Response {
    let (total, count) = match timeline(state, job).await {
        Ok(known) => known,
        Err(answer) => return answer,
    };
    let film = write::Film {
        count,
        segment_seconds: state.config.segment_seconds,
        total_seconds: total,
        rung,
        cmaf,
    };
    let text = match (live, rung) {
        (false, _) => film.vod(),
        (true, Some(rung)) => film.event(state.variants.contiguous(job, rung)),
        (true, None) => {
            let made = state.manager.made(job).unwrap_or_default();
            film.event((0..).take_while(|i| made.contains(i)).count() as u32)
        }
    };
    playlist_response(text, method)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Manifest {
    Hls,
    Dash,
}

/// `master.m3u8` or `stream.mpd`. As CMAF the upscaled rung's first segments are repackaged
/// first: the answer waits for them (bounded), then 503 + Retry-After.
async fn ladder_reply(
    state: &Arc<AppState>,
    job: &str,
    profile: Option<&String>,
    method: &Method,
    manifest: Manifest,
) -> Response {
    let (total, _) = match timeline(state, job).await {
        Ok(known) => known,
        Err(answer) => return answer,
    };
    let deadline = Instant::now() + Duration::from_secs(state.config.segment_wait_seconds);
    let mut landed = state.variants.events(job);
    let offered = loop {
        let variants = Arc::clone(&state.variants);
        let (id, profile) = (job.to_string(), profile.cloned());
        let offered = tokio::task::spawn_blocking(move || variants.offer(&id, profile.as_deref()))
            .await
            .unwrap_or(Err(VariantError::NotReady));
        let Err(VariantError::NotReady) = offered else {
            break offered;
        };
        let Some(landed) = landed.as_mut() else {
            break offered;
        };
        // Woken when a rung segment lands; when the upscaled rung's own first segment is what
        // is missing, its landing is not one: look again every second.
        let wait = deadline.min(Instant::now() + Duration::from_secs(1));
        let _ = tokio::time::timeout_at(wait.into(), landed.changed()).await;
        if Instant::now() >= deadline {
            break offered;
        }
    };
    match offered {
        Ok(ladder) => match manifest {
            Manifest::Hls => playlist_response(hls_master(&ladder), method),
            Manifest::Dash => {
                let manifest = dash_manifest(&ladder, total, state.config.segment_seconds);
                let mut response = playlist_response(dash::mpd(&manifest), method);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/dash+xml"),
                );
                response
            }
        },
        Err(VariantError::NotReady) => not_ready(
            "not_ready",
            "the upscaled film has no segment ready for this yet; retry shortly",
        ),
        Err(error @ VariantError::NoProfile { .. }) => hls_files::json_error(
            StatusCode::BAD_REQUEST,
            "unknown_profile",
            &error.to_string(),
        ),
        Err(error @ VariantError::NoJob(_)) => {
            hls_files::json_error(StatusCode::NOT_FOUND, "not_found", &error.to_string())
        }
    }
}

/// The master playlist of a ladder: the upscaled rung first. As MPEG-TS each rung carries its
/// sound; as CMAF the sound is a rendition of its own, counted in every variant's bandwidth.
fn hls_master(ladder: &Ladder) -> String {
    let audio = ladder.audio.as_ref();
    let variants: Vec<write::Variant> = ladder
        .video
        .iter()
        .enumerate()
        .map(|(i, track)| {
            let uri = match ladder.format {
                SegmentFormat::Ts if i == 0 => "index.m3u8".to_string(),
                SegmentFormat::Ts => format!("index.{}.m3u8", track.name),
                SegmentFormat::Fmp4 => format!("video.{}.m3u8", track.name),
            };
            let facts = &track.facts;
            write::Variant {
                uri,
                bandwidth: facts.bandwidth + audio.map_or(0, |a| a.facts.bandwidth),
                average_bandwidth: facts.average_bandwidth
                    + audio.map_or(0, |a| a.facts.average_bandwidth),
                width: facts.width,
                height: facts.height,
                codecs: match audio {
                    Some(a) => format!("{},{}", facts.codecs, a.facts.codecs),
                    None => facts.codecs.clone(),
                },
                frame_rate: ladder.frame_rate,
            }
        })
        .collect();
    write::master(&variants, audio.map(|_| "audio.m3u8"))
}

fn dash_manifest(ladder: &Ladder, total: f64, segment_seconds: u32) -> dash::Manifest {
    let representation = |track: &crate::jobs::variants::Track| dash::Representation {
        id: track.name.clone(),
        bandwidth: track.facts.bandwidth,
        width: track.facts.width,
        height: track.facts.height,
        codecs: track.facts.codecs.clone(),
    };
    dash::Manifest {
        total_seconds: total,
        segment_seconds,
        frame_rate: ladder.frame_rate,
        video: ladder.video.iter().map(representation).collect(),
        audio: ladder.audio.as_ref().map(representation),
    }
}

/// A track's init segment is written with its first media segment: waited for like one.
async fn init_reply(
    state: &Arc<AppState>,
    job: &str,
    file: &str,
    track: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let path = state.config.hls_root.join(job).join(file);
    let exists = tokio::task::spawn_blocking(move || path.is_file())
        .await
        .unwrap_or(false);
    if !exists {
        if let Err(answer) = wait_for_rung_segment(state, job, track, 0).await {
            return answer;
        }
    }
    serve_file(state, job, file, method, headers).await
}

async fn serve_file(
    state: &Arc<AppState>,
    job: &str,
    file: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let root = &state.config.hls_root;
    let Some(resolved) = hls_files::resolve(root, job, file) else {
        return hls_files::json_error(StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    match hls_files::open_confined(root, &resolved, hls_files::body_to_read(method)).await {
        Ok(opened) => hls_files::respond(opened, resolved.kind, method, headers).await,
        Err(_) => hls_files::json_error(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}

fn playlist_response(text: String, method: &Method) -> Response {
    let length = text.len();
    let mut response = if method == Method::HEAD {
        Response::new(warp::hyper::Body::empty())
    } else {
        Response::new(text.into())
    };
    let headers = response.headers_mut();
    hls_files::set_cors(headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(FileKind::Playlist.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

async fn segment_reply(
    state: &Arc<AppState>,
    job: &str,
    file: &str,
    index: u32,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    if !state.manager.is_made(job, index) {
        if let Err(answer) = wait_for_segment(state, job, index).await {
            return answer;
        }
    }
    serve_file(state, job, file, method, headers).await
}

async fn rung_segment_reply(
    state: &Arc<AppState>,
    job: &str,
    file: &str,
    rung: &str,
    index: u32,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    if !state.variants.is_made(job, rung, index) {
        if let Err(answer) = wait_for_rung_segment(state, job, rung, index).await {
            return answer;
        }
    }
    serve_file(state, job, file, method, headers).await
}

/// Asks for segment `index` of `rung` (made next when missing) and waits for it, at most
/// `segment_wait_seconds`; `Err` is the answer to send instead.
async fn wait_for_rung_segment(
    state: &Arc<AppState>,
    job: &str,
    rung: &str,
    index: u32,
) -> Result<(), Response> {
    let deadline = Instant::now() + Duration::from_secs(state.config.segment_wait_seconds);
    let Some(mut landed) = state.variants.events(job) else {
        return Err(hls_files::not_found());
    };
    let variants = Arc::clone(&state.variants);
    let (id, name) = (job.to_string(), rung.to_string());
    let want = move || variants.want_segment(&id, &name, index);
    loop {
        let found = tokio::task::spawn_blocking(want.clone())
            .await
            .unwrap_or(RungSegment::Never);
        match found {
            RungSegment::Ready => return Ok(()),
            RungSegment::Never => {
                return Err(hls_files::json_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such segment in this rung (or the rung could not be made)",
                ))
            }
            RungSegment::Pending => {}
        }
        let woken = tokio::time::timeout_at(deadline.into(), landed.changed()).await;
        if let Some(gone) = state.manager.outcome(job).and_then(ended) {
            return Err(gone);
        }
        if !matches!(woken, Ok(Ok(()))) {
            return Err(not_ready(
                "segment_not_ready",
                "this segment is being made; retry shortly",
            ));
        }
    }
}

/// Asks the job manager for segment `index` (which may restart the encoder there) and waits
/// until it is made, at most `segment_wait_seconds`; `Err` is the answer to send instead.
async fn wait_for_segment(state: &Arc<AppState>, job: &str, index: u32) -> Result<(), Response> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(state.config.segment_wait_seconds);
    // Subscribed before asking, so a segment landing in between is not missed.
    let Some(mut landed) = state.manager.segment_events(job) else {
        return Err(hls_files::not_found());
    };
    // The first question about a job may probe its source.
    let manager = Arc::clone(&state.manager);
    let id = job.to_string();
    let found = tokio::task::spawn_blocking(move || manager.want_segment(&id, index))
        .await
        .unwrap_or(SegmentState::Never);
    match found {
        SegmentState::Ready => {}
        SegmentState::Never => {
            return Err(state
                .manager
                .outcome(job)
                .and_then(ended)
                .unwrap_or_else(|| {
                    hls_files::json_error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "no such segment in this film",
                    )
                }));
        }
        SegmentState::Pending => loop {
            let woken = tokio::time::timeout_at(deadline.into(), landed.changed()).await;
            if state.manager.is_made(job, index) {
                break;
            }
            if let Some(gone) = state.manager.outcome(job).and_then(ended) {
                return Err(gone);
            }
            if !matches!(woken, Ok(Ok(()))) {
                state.manager.record_wait(started.elapsed());
                let mut response = hls_files::json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "segment_not_ready",
                    "this segment is being made; retry shortly",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                return Err(response);
            }
        },
    }
    state.manager.record_wait(started.elapsed());
    Ok(())
}

/// The answer for a job that will make no more segments: 410 with its state and error.
fn ended((state, error): (JobState, Option<String>)) -> Option<Response> {
    let (code, message) = match state {
        JobState::Failed => (
            "job_failed",
            error.unwrap_or_else(|| "the job failed".into()),
        ),
        JobState::Cancelled => ("job_cancelled", "the job was cancelled".to_string()),
        _ => return None,
    };
    Some(hls_files::json_answer(
        StatusCode::GONE,
        serde_json::json!({ "error": code, "message": message, "state": state }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_say_what_is_asked() {
        let rung = |r: &str| Some(r.to_string());
        assert_eq!(asked("master.m3u8"), Some(Asked::Master));
        assert_eq!(
            asked("index.m3u8"),
            Some(Asked::Playlist {
                rung: None,
                live: false
            })
        );
        assert_eq!(
            asked("stream.480p.m3u8"),
            Some(Asked::Playlist {
                rung: rung("480p"),
                live: true
            })
        );
        assert_eq!(
            asked("segment_00003.ts"),
            Some(Asked::Segment {
                rung: None,
                index: 3
            })
        );
        assert_eq!(
            asked("segment_00003.54p.ts"),
            Some(Asked::Segment {
                rung: rung("54p"),
                index: 3
            })
        );
        for other in [
            "encoder.m3u8",
            "index.x.m3u8",
            "job.json",
            "preview.png",
            "other.480p.m3u8",
        ] {
            assert_eq!(asked(other), None, "{other}");
        }
    }
}
