//! Playlists liveup writes itself: for a run, from the segments it has checked; for daemon
//! jobs, from what is on disk: the VOD `index.m3u8`
//! that lists the whole film up front (so players can seek ahead of the upscaler), and the
//! growing EVENT `stream.m3u8`.

use std::fmt::Write;

use crate::job_dir::segment_name;

/// Length of segment `index` of a film of `count` segments of `segment_seconds`, the last one
/// holding what is left of `total_seconds`.
pub fn segment_duration(index: u32, count: u32, segment_seconds: u32, total_seconds: f64) -> f64 {
    let full = f64::from(segment_seconds);
    if index + 1 < count {
        full
    } else {
        (total_seconds - f64::from(index) * full).clamp(0.001, full)
    }
}

fn header(out: &mut String, segment_seconds: u32, kind: &str, first: u32) {
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{segment_seconds}\n\
         #EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
}

fn entries(out: &mut String, upto: u32, count: u32, segment_seconds: u32, total_seconds: f64) {
    for index in 0..upto {
        let duration = segment_duration(index, count, segment_seconds, total_seconds);
        let _ = write!(out, "#EXTINF:{duration:.6},\n{}\n", segment_name(index));
    }
}

/// Every segment of the film, made or not, and the end: a VOD playlist.
pub fn vod(count: u32, segment_seconds: u32, total_seconds: f64) -> String {
    let mut out = String::new();
    header(&mut out, segment_seconds, "VOD", 0);
    entries(&mut out, count, count, segment_seconds, total_seconds);
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// The segments made so far without a gap from the start; the end once all are made.
pub fn event(ready: u32, count: u32, segment_seconds: u32, total_seconds: f64) -> String {
    let mut out = String::new();
    header(&mut out, segment_seconds, "EVENT", 0);
    entries(
        &mut out,
        ready.min(count),
        count,
        segment_seconds,
        total_seconds,
    );
    if ready >= count {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The segments one run has made so far, with their measured lengths, starting at the run's
/// first segment; the end once the run is complete.
pub fn run(first: u32, made: &[f64], segment_seconds: u32, ended: bool) -> String {
    let mut out = String::new();
    header(&mut out, segment_seconds, "EVENT", first);
    for (index, duration) in (first..).zip(made) {
        let _ = write!(out, "#EXTINF:{duration:.6},\n{}\n", segment_name(index));
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::MediaPlaylist;

    #[test]
    fn the_vod_playlist_lists_the_whole_film_with_a_short_last_segment() {
        let playlist = MediaPlaylist::parse(&vod(4, 6, 20.5)).unwrap();
        assert_eq!(playlist.playlist_type.as_deref(), Some("VOD"));
        assert_eq!(playlist.target_duration, 6);
        assert_eq!(playlist.segments.len(), 4);
        assert_eq!(playlist.segments[3].uri, "segment_00003.ts");
        assert!((playlist.segments[3].duration - 2.5).abs() < 1e-9);
        assert!((playlist.total_duration() - 20.5).abs() < 1e-9);
        assert!(playlist.ended);
    }

    #[test]
    fn the_event_playlist_grows_and_ends_when_all_are_made() {
        let growing = MediaPlaylist::parse(&event(2, 4, 6, 20.5)).unwrap();
        assert_eq!((growing.segments.len(), growing.ended), (2, false));
        let done = MediaPlaylist::parse(&event(4, 4, 6, 20.5)).unwrap();
        assert_eq!((done.segments.len(), done.ended), (4, true));
    }

    #[test]
    fn a_run_lists_its_own_segments_from_where_it_started() {
        let text = run(3, &[6.0, 2.5], 6, true);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{text}");
        let playlist = MediaPlaylist::parse(&text).unwrap();
        let uris: Vec<&str> = playlist.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["segment_00003.ts", "segment_00004.ts"]);
        assert!((playlist.total_duration() - 8.5).abs() < 1e-9);
        assert!(playlist.ended);
        assert!(
            !MediaPlaylist::parse(&run(0, &[6.0], 6, false))
                .unwrap()
                .ended
        );
    }
}
