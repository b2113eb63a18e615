//! The DASH manifest (`stream.mpd`) over the same CMAF files the HLS playlists list: one video
//! adaptation set whose representations are the rungs, and the sound apart. Like `index.m3u8`
//! it describes the whole film from the first request on (a static MPD), so a DASH player seeks
//! ahead of the upscaler too; a segment not made yet is waited for when asked.

use std::fmt::Write;

/// One representation: a rung's name (also its file names' track) and what players choose by.
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    pub id: String,
    pub bandwidth: u64,
    pub width: u32,
    pub height: u32,
    pub codecs: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub total_seconds: f64,
    pub segment_seconds: u32,
    pub frame_rate: Option<f64>,
    /// Best first.
    pub video: Vec<Representation>,
    pub audio: Option<Representation>,
}

/// `PT1H2M3.456S`-style duration (xs:duration), seconds only: `PT3723.456S`.
fn duration(seconds: f64) -> String {
    format!("PT{seconds:.3}S")
}

fn template(out: &mut String, segment_seconds: u32) {
    let _ = writeln!(
        out,
        "      <SegmentTemplate timescale=\"1000\" duration=\"{}\" startNumber=\"0\" \
         initialization=\"init.$RepresentationID$.mp4\" \
         media=\"segment_$Number%05d$.$RepresentationID$.m4s\"/>",
        segment_seconds * 1000
    );
}

pub fn mpd(manifest: &Manifest) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
         type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">\n  \
         <Period id=\"0\" start=\"PT0S\">",
        duration(manifest.total_seconds),
        duration(f64::from(manifest.segment_seconds)),
    );
    let rate = manifest
        .frame_rate
        .map(|r| format!(" frameRate=\"{}\"", frame_rate(r)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" \
         segmentAlignment=\"true\" startWithSAP=\"1\"{rate}>"
    );
    template(&mut out, manifest.segment_seconds);
    for v in &manifest.video {
        let _ = writeln!(
            out,
            "      <Representation id=\"{}\" bandwidth=\"{}\" width=\"{}\" height=\"{}\" \
             codecs=\"{}\"/>",
            v.id,
            v.bandwidth.max(1),
            v.width,
            v.height,
            v.codecs
        );
    }
    out.push_str("    </AdaptationSet>\n");
    if let Some(a) = &manifest.audio {
        out.push_str(
            "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">\n",
        );
        template(&mut out, manifest.segment_seconds);
        let _ = writeln!(
            out,
            "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\"/>",
            a.id,
            a.bandwidth.max(1),
            a.codecs
        );
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

/// `24`, `30000/1001`: an exact fraction for the common NTSC rates.
fn frame_rate(rate: f64) -> String {
    for base in [24.0, 30.0, 60.0] {
        if (rate - base * 1000.0 / 1001.0).abs() < 0.001 {
            return format!("{}/1001", base as u32 * 1000);
        }
    }
    if (rate - rate.round()).abs() < 0.001 {
        format!("{}", rate.round() as u64)
    } else {
        format!("{}/1000", (rate * 1000.0).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_lists_the_rungs_and_the_sound_over_the_cmaf_files() {
        let text = mpd(&Manifest {
            total_seconds: 20.5,
            segment_seconds: 2,
            frame_rate: Some(24000.0 / 1001.0),
            video: vec![Representation {
                id: "1080p".into(),
                bandwidth: 6_000_000,
                width: 1920,
                height: 1080,
                codecs: "avc1.640028".into(),
            }],
            audio: Some(Representation {
                id: "audio".into(),
                bandwidth: 192_000,
                width: 0,
                height: 0,
                codecs: "mp4a.40.2".into(),
            }),
        });
        assert!(text.contains("type=\"static\" mediaPresentationDuration=\"PT20.500S\""));
        assert!(text.contains("frameRate=\"24000/1001\""), "{text}");
        assert!(text.contains("media=\"segment_$Number%05d$.$RepresentationID$.m4s\""));
        assert!(text.contains("initialization=\"init.$RepresentationID$.mp4\""));
        assert!(text.contains(
            "<Representation id=\"1080p\" bandwidth=\"6000000\" width=\"1920\" height=\"1080\" codecs=\"avc1.640028\"/>"
        ));
        assert!(text.contains("contentType=\"audio\""), "{text}");
        assert_eq!(text.matches("<AdaptationSet").count(), 2);
        assert_eq!(frame_rate(10.0), "10");
        assert_eq!(frame_rate(12.5), "12500/1000");
    }
}
