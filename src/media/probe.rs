//! What a source contains, from `ffprobe -print_format json`.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use super::process::{self, ProcessError};
use super::{Rational, Tools};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: String, source: ProcessError },
    #[error("{path} has no video stream")]
    NoVideo { path: String },
    #[error("{path}: ffprobe gave {what}")]
    Malformed { path: String, what: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    pub width: u32,
    pub height: u32,
    pub pix_fmt: String,
    /// The rate frames are decoded and encoded at: the stream's average rate.
    pub frame_rate: Rational,
    /// The container says frame times vary; informational, every source is decoded at a
    /// constant rate either way.
    pub variable_frame_rate: bool,
    pub duration_seconds: f64,
    /// How long after the file's first packet the video starts (encoder delay, usually a frame
    /// or two). Decoded frames are rebased to zero, so the encoder cuts this much off the start
    /// of the audio to keep it in sync.
    pub video_delay_seconds: f64,
    pub audio_codec: Option<String>,
}

impl MediaInfo {
    pub fn expected_frames(&self) -> u64 {
        (self.duration_seconds * self.frame_rate.as_f64()).round() as u64
    }
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

pub fn probe(tools: &Tools, path: &Path) -> Result<MediaInfo, ProbeError> {
    let mut command = Command::new(&tools.ffprobe);
    command
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path);
    let shown = path.display().to_string();
    let json = process::output("ffprobe", command).map_err(|source| ProbeError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    parse(&json, &shown)
}

pub(crate) fn parse(json: &[u8], path: &str) -> Result<MediaInfo, ProbeError> {
    let malformed = |what: String| ProbeError::Malformed {
        path: path.to_string(),
        what,
    };
    let output: ProbeOutput =
        serde_json::from_slice(json).map_err(|e| malformed(format!("invalid JSON ({e})")))?;
    let video = output
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && s.disposition.attached_pic == 0)
        .ok_or_else(|| ProbeError::NoVideo {
            path: path.to_string(),
        })?;
    let (width, height) = match (video.width, video.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(malformed("a video stream without dimensions".into())),
    };
    let rate = |field: &Option<String>| {
        field
            .as_deref()
            .and_then(|r| r.parse::<Rational>().ok())
            .filter(|r| r.is_valid())
    };
    let real = rate(&video.r_frame_rate);
    let average = rate(&video.avg_frame_rate);
    // The average is what the film really plays at; the "real" rate can be a field rate or the
    // fastest moment of a variable-rate film. Matroska reports the two as equal even for
    // variable-rate streams, which is why the decoder always converts to a constant rate.
    let frame_rate = average
        .or(real)
        .ok_or_else(|| malformed("no usable frame rate".into()))?;
    let variable_frame_rate =
        matches!((real, average), (Some(r), Some(a)) if r.as_f64() != a.as_f64());
    let seconds = |field: &Option<String>| field.as_deref().and_then(|d| d.parse::<f64>().ok());
    let duration_seconds = seconds(&video.duration)
        .or_else(|| output.format.as_ref().and_then(|f| seconds(&f.duration)))
        .filter(|d| *d > 0.0)
        .ok_or_else(|| malformed("no duration".into()))?;
    let video_start = seconds(&video.start_time).unwrap_or(0.0);
    let file_start = output
        .streams
        .iter()
        .filter_map(|s| seconds(&s.start_time))
        .fold(video_start, f64::min);
    let audio_codec = output
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"))
        .map(|s| s.codec_name.clone().unwrap_or_default());
    Ok(MediaInfo {
        width,
        height,
        pix_fmt: video.pix_fmt.clone().unwrap_or_default(),
        frame_rate,
        variable_frame_rate,
        duration_seconds,
        video_delay_seconds: video_start - file_start,
        audio_codec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MKV_WITH_AAC: &str = r#"{
      "streams": [
        {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 1920, "height": 1080,
         "pix_fmt": "yuv420p10le", "r_frame_rate": "24000/1001", "avg_frame_rate": "24000/1001",
         "start_time": "0.042",
         "disposition": {"default": 1, "attached_pic": 0}},
        {"index": 1, "codec_name": "aac", "codec_type": "audio", "sample_rate": "48000", "start_time": "-0.021",
         "r_frame_rate": "0/0", "avg_frame_rate": "0/0"},
        {"index": 2, "codec_name": "mjpeg", "codec_type": "video", "width": 600, "height": 900,
         "r_frame_rate": "90000/1", "avg_frame_rate": "0/0", "disposition": {"attached_pic": 1}}
      ],
      "format": {"filename": "film.mkv", "duration": "5400.125000"}
    }"#;

    #[test]
    fn reads_a_matroska_film_and_skips_its_cover_art() {
        let info = parse(MKV_WITH_AAC.as_bytes(), "film.mkv").unwrap();
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!(info.frame_rate, Rational::new(24000, 1001));
        assert!(!info.variable_frame_rate);
        assert_eq!(info.duration_seconds, 5400.125);
        assert_eq!(info.audio_codec.as_deref(), Some("aac"));
        assert_eq!(info.pix_fmt, "yuv420p10le");
        assert!((info.video_delay_seconds - 0.063).abs() < 1e-9);
    }

    #[test]
    fn variable_rate_uses_the_average() {
        let json = r#"{"streams":[{"codec_type":"video","width":64,"height":36,
            "r_frame_rate":"25/1","avg_frame_rate":"50/3","duration":"3.0"}]}"#;
        let info = parse(json.as_bytes(), "vfr.mkv").unwrap();
        assert!(info.variable_frame_rate);
        assert_eq!(info.frame_rate, Rational::new(50, 3));
        assert_eq!(info.audio_codec, None);
        assert_eq!(info.expected_frames(), 50);
    }

    #[test]
    fn audio_only_files_are_refused() {
        let json =
            r#"{"streams":[{"codec_type":"audio","codec_name":"mp3"}],"format":{"duration":"3"}}"#;
        assert!(matches!(
            parse(json.as_bytes(), "song.mp3"),
            Err(ProbeError::NoVideo { .. })
        ));
    }
}
