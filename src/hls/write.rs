//! Playlists liveup writes itself: for a run, from the segments it has checked; for daemon
//! jobs, from what is on disk: the VOD `index.m3u8`
//! that lists the whole film up front (so players can seek ahead of the upscaler), and the
//! growing EVENT `stream.m3u8`.

use std::fmt::Write;

use crate::job_dir::{cmaf_init_name, cmaf_segment_name, rung_segment_name, segment_name};

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

/// The film's segments in one rung: the top one (`None`) or a lower one by name, as MPEG-TS; or
/// one CMAF track (`cmaf`: a rung's name or `audio`) with its init segment.
#[derive(Debug, Clone, Copy)]
pub struct Film<'a> {
    pub count: u32,
    pub segment_seconds: u32,
    pub total_seconds: f64,
    pub rung: Option<&'a str>,
    pub cmaf: bool,
}

impl Film<'_> {
    fn entries(&self, out: &mut String, upto: u32) {
        for index in 0..upto {
            let duration =
                segment_duration(index, self.count, self.segment_seconds, self.total_seconds);
            let name = match (self.rung, self.cmaf) {
                (Some(track), true) => cmaf_segment_name(index, track),
                (Some(rung), false) => rung_segment_name(index, rung),
                (None, _) => segment_name(index),
            };
            let _ = write!(out, "#EXTINF:{duration:.6},\n{name}\n");
        }
    }

    /// Every segment of the film, made or not, and the end: a VOD playlist.
    pub fn vod(&self) -> String {
        let mut out = String::new();
        header(&mut out, self.segment_seconds, "VOD", 0);
        if let (Some(track), true) = (self.rung, self.cmaf) {
            out = out.replace("#EXT-X-VERSION:6", "#EXT-X-VERSION:7");
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", cmaf_init_name(track));
        }
        self.entries(&mut out, self.count);
        out.push_str("#EXT-X-ENDLIST\n");
        out
    }

    /// The segments made so far without a gap from the start; the end once all are made.
    pub fn event(&self, ready: u32) -> String {
        let mut out = String::new();
        header(&mut out, self.segment_seconds, "EVENT", 0);
        self.entries(&mut out, ready.min(self.count));
        if ready >= self.count {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// One rung as a master playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub uri: String,
    /// Peak bits per second, measured on the rung's segments.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub width: u32,
    pub height: u32,
    /// `avc1.64001f,mp4a.40.2`
    pub codecs: String,
    pub frame_rate: Option<f64>,
}

/// A master playlist of `variants`, best first (RFC 8216 §4.3.4.2), with the sound as a
/// rendition of its own when it is a track apart (`audio`: its playlist's URI).
pub fn master(variants: &[Variant], audio: Option<&str>) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(uri) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"main\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{uri}\""
        );
    }
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\"",
            v.bandwidth.max(1),
            v.average_bandwidth.max(1),
            v.width,
            v.height,
            v.codecs
        );
        if let Some(rate) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={rate:.3}");
        }
        if audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = write!(out, "\n{}\n", v.uri);
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

    /// Every segment of the top rung, made or not, and the end: a VOD playlist.
    fn vod(count: u32, segment_seconds: u32, total_seconds: f64) -> String {
        Film {
            count,
            segment_seconds,
            total_seconds,
            rung: None,
            cmaf: false,
        }
        .vod()
    }

    /// The top rung's segments made so far without a gap from the start; the end once all are made.
    fn event(ready: u32, count: u32, segment_seconds: u32, total_seconds: f64) -> String {
        Film {
            count,
            segment_seconds,
            total_seconds,
            rung: None,
            cmaf: false,
        }
        .event(ready)
    }

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
    fn a_lower_rung_lists_its_own_segments_on_the_same_timeline() {
        let film = Film {
            count: 3,
            segment_seconds: 4,
            total_seconds: 10.0,
            rung: Some("480p"),
            cmaf: false,
        };
        let playlist = MediaPlaylist::parse(&film.vod()).unwrap();
        let uris: Vec<&str> = playlist.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "segment_00000.480p.ts",
                "segment_00001.480p.ts",
                "segment_00002.480p.ts"
            ]
        );
        assert!((playlist.total_duration() - 10.0).abs() < 1e-9);
        let growing = MediaPlaylist::parse(&film.event(1)).unwrap();
        assert_eq!((growing.segments.len(), growing.ended), (1, false));
        let track = Film { cmaf: true, ..film }.vod();
        assert!(track.contains("#EXT-X-VERSION:7\n"), "{track}");
        assert!(
            track.contains("#EXT-X-MAP:URI=\"init.480p.mp4\"\n"),
            "{track}"
        );
        assert!(track.contains("\nsegment_00002.480p.m4s\n"), "{track}");
    }

    #[test]
    fn the_master_lists_every_variant_with_what_players_choose_by() {
        let text = master(
            &[
                Variant {
                    uri: "index.m3u8".into(),
                    bandwidth: 5_000_000,
                    average_bandwidth: 4_000_000,
                    width: 1920,
                    height: 1080,
                    codecs: "avc1.640028,mp4a.40.2".into(),
                    frame_rate: Some(23.976),
                },
                Variant {
                    uri: "index.480p.m3u8".into(),
                    bandwidth: 1_500_000,
                    average_bandwidth: 1_400_000,
                    width: 854,
                    height: 480,
                    codecs: "avc1.64001e,mp4a.40.2".into(),
                    frame_rate: None,
                },
            ],
            None,
        );
        assert!(text.starts_with("#EXTM3U\n"), "{text}");
        assert!(text.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=5000000,AVERAGE-BANDWIDTH=4000000,RESOLUTION=1920x1080,\
             CODECS=\"avc1.640028,mp4a.40.2\",FRAME-RATE=23.976\nindex.m3u8\n"
        ));
        assert!(
            text.contains("RESOLUTION=854x480,CODECS=\"avc1.64001e,mp4a.40.2\"\nindex.480p.m3u8\n")
        );
        let with_audio = master(&[], Some("audio.m3u8"));
        assert!(
            with_audio.contains("TYPE=AUDIO,GROUP-ID=\"audio\""),
            "{with_audio}"
        );
        assert!(with_audio.contains("URI=\"audio.m3u8\""), "{with_audio}");
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
