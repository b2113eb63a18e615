//! Clips made by ffmpeg on the spot, and the measurements the tests make on what liveup wrote.
#![allow(dead_code)]

pub mod daemon;
pub mod nginx;

use std::path::{Path, PathBuf};
use std::process::Command;

use liveup::media::Tools;
use liveup::pipeline::frames::Frame;
use liveup::pipeline::{self, EncoderSettings, PipelineError, PipelineSpec, Progress, Summary};
use liveup::upscale::{self, DeviceChoice, EngineOptions};

pub fn tools() -> Tools {
    Tools::from_env()
}

pub fn cpu() -> EngineOptions {
    EngineOptions {
        device: DeviceChoice::Cpu,
        ..EngineOptions::default()
    }
}

/// A synthetic source: testsrc2 pictures, optionally a sine tone, in the given container/codec.
pub struct Clip<'a> {
    pub width: u32,
    pub height: u32,
    pub rate: u32,
    pub seconds: f64,
    pub audio: bool,
    /// A real photograph panned across the frame instead of the synthetic test pattern.
    pub photo: bool,
    pub extra: &'a [&'a str],
}

impl Default for Clip<'_> {
    fn default() -> Self {
        Clip {
            width: 96,
            height: 54,
            rate: 10,
            seconds: 2.0,
            audio: true,
            photo: false,
            extra: &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
        }
    }
}

impl Clip<'_> {
    pub fn make(&self, path: &Path) -> PathBuf {
        let mut command = Command::new("ffmpeg");
        command.args(["-v", "error", "-y"]);
        if self.photo {
            command
                .args(["-loop", "1", "-framerate", &self.rate.to_string()])
                .args(["-t", &self.seconds.to_string(), "-i"])
                .arg(photo())
                .arg("-vf")
                .arg(format!(
                    "scale=150:100:flags=area,crop={}:{}:x=t*12:y=t*6",
                    self.width, self.height
                ));
        } else {
            command.args(["-f", "lavfi", "-i"]).arg(format!(
                "testsrc2=size={}x{}:rate={}:duration={},scale={}:{}",
                self.width, self.height, self.rate, self.seconds, self.width, self.height
            ));
        }
        if self.audio {
            command
                .args(["-f", "lavfi", "-i"])
                .arg(format!("sine=frequency=440:duration={}", self.seconds));
        }
        command.args(self.extra).arg(path);
        run_ok(command);
        path.to_path_buf()
    }
}

/// A real photograph that `scripts/setup` installs (scikit-image's sample "chelsea", 451×300).
pub fn photo() -> PathBuf {
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/venv/lib");
    std::fs::read_dir(&site)
        .expect("scripts/setup has run")
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages/skimage/data/chelsea.png"))
        .find(|path| path.is_file())
        .expect("scikit-image's sample photo is installed")
}

/// The sample photo at `width × height`, as ffmpeg decodes it to rgb24.
pub fn photo_frame(width: u32, height: u32) -> Frame {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-i"])
        .arg(photo())
        .args(["-vf", &format!("scale={width}:{height}:flags=area")])
        .args(["-pix_fmt", "rgb24", "-f", "rawvideo", "-"]);
    Frame {
        width,
        height,
        data: run_ok(command),
    }
}

pub fn upscale_with(model: &str, options: &EngineOptions, input: &Frame) -> Frame {
    let mut upscaler = upscale::build(model, options).unwrap();
    let scale = upscaler.scale();
    let mut output = Frame::new(input.width * scale, input.height * scale);
    upscaler.upscale(input, &mut output).unwrap();
    output
}

pub fn run_ok(mut command: Command) -> Vec<u8> {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub struct Run {
    pub dir: tempfile::TempDir,
    pub output: PathBuf,
    pub hls_dir: PathBuf,
}

impl Run {
    pub fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        Run {
            output: dir.path().join("out").join("film.upscaled.ts"),
            hls_dir: dir.path().join("hls"),
            dir,
        }
    }

    pub fn spec(&self, input: &Path, segment_seconds: u32) -> PipelineSpec {
        PipelineSpec {
            input: input.to_path_buf(),
            output: Some(self.output.clone()),
            hls_dir: self.hls_dir.clone(),
            segment_seconds,
            start_segment: 0,
            end_segment: None,
            playlist_name: liveup::media::args::PLAYLIST_NAME.to_string(),
            encoder: EncoderSettings::default(),
            min_free_bytes: 0,
        }
    }

    pub fn upscale(
        &self,
        input: &Path,
        model: &str,
        segment_seconds: u32,
    ) -> Result<Summary, PipelineError> {
        let mut upscaler = upscale::build(model, &cpu()).expect("model loads");
        pipeline::run(
            &tools(),
            &self.spec(input, segment_seconds),
            upscaler.as_mut(),
            &Progress::default(),
            &liveup::pipeline::Control::default(),
        )
    }

    pub fn playlist_text(&self) -> String {
        std::fs::read_to_string(self.hls_dir.join("stream.m3u8")).unwrap()
    }

    /// No final file under its final name and no leftover partial file.
    pub fn assert_no_final_file(&self) {
        assert!(!self.output.exists(), "final file left behind");
        assert!(
            !liveup::job_dir::partial_path(&self.output).exists(),
            "partial file left behind"
        );
    }
}

#[derive(Debug)]
pub struct StreamFacts {
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub video_seconds: f64,
    pub has_audio: bool,
}

pub fn facts(path: &Path) -> StreamFacts {
    let mut command = Command::new("ffprobe");
    command
        .args([
            "-v",
            "error",
            "-count_frames",
            "-print_format",
            "json",
            "-show_streams",
        ])
        .arg(path);
    let json: serde_json::Value = serde_json::from_slice(&run_ok(command)).unwrap();
    let streams = json["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    let number = |v: &serde_json::Value| -> f64 {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or(v.as_f64())
            .unwrap_or(f64::NAN)
    };
    StreamFacts {
        width: video["width"].as_u64().unwrap() as u32,
        height: video["height"].as_u64().unwrap() as u32,
        frames: number(&video["nb_read_frames"]) as u64,
        video_seconds: number(&video["duration"]),
        has_audio: streams.iter().any(|s| s["codec_type"] == "audio"),
    }
}

/// The presentation time of every video frame of `path`, in seconds, in decode order.
pub fn video_frame_times(path: &Path) -> Vec<f64> {
    let mut command = Command::new("ffprobe");
    command
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path);
    let out = String::from_utf8(run_ok(command)).unwrap();
    out.lines()
        .filter_map(|line| line.trim().trim_end_matches(',').parse::<f64>().ok())
        .collect()
}

/// When the last video frame of `path` starts, in seconds.
pub fn last_frame_time(path: &Path) -> f64 {
    video_frame_times(path).into_iter().fold(f64::NAN, f64::max)
}

/// Every frame of `path` as rgb24, exactly as decoded (no frame-rate conversion).
pub fn decode_frames(path: &Path, filter: Option<&str>) -> Vec<Frame> {
    let facts = facts(path);
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-i"]).arg(path);
    let (mut width, mut height) = (facts.width, facts.height);
    if let Some(filter) = filter {
        command.args(["-vf", filter]);
        width *= 2;
        height *= 2;
    }
    command.args([
        "-fps_mode",
        "passthrough",
        "-pix_fmt",
        "rgb24",
        "-f",
        "rawvideo",
        "-",
    ]);
    let bytes = run_ok(command);
    let size = Frame::byte_len(width, height);
    assert_eq!(bytes.len() % size, 0);
    bytes
        .chunks(size)
        .map(|chunk| Frame {
            width,
            height,
            data: chunk.to_vec(),
        })
        .collect()
}

pub fn psnr(a: &Frame, b: &Frame) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let squared: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = squared / a.data.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// What ffmpeg prints when it decodes every stream of `path` with `-v error`: empty for a file
/// that is whole and has increasing timestamps in every stream.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str(&format!("\n(ffmpeg {})", out.status));
    }
    text
}

/// One packet as ffprobe reports it, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    pub pts: f64,
    pub dts: f64,
    pub duration: f64,
}

/// The packets of the first `kind` ("v" or "a") stream of `path`, in file order.
pub fn packets(path: &Path, kind: &str) -> Vec<Packet> {
    let mut command = Command::new("ffprobe");
    command
        .args(["-v", "error", "-select_streams", &format!("{kind}:0")])
        .args([
            "-show_entries",
            "packet=pts_time,dts_time,duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path);
    let out = String::from_utf8(run_ok(command)).unwrap();
    out.lines()
        .filter_map(|line| {
            let fields: Vec<f64> = line
                .split(',')
                .filter(|f| !f.is_empty())
                .map(|f| f.parse().unwrap_or(f64::NAN))
                .collect();
            (fields.len() >= 3).then(|| Packet {
                pts: fields[0],
                dts: fields[1],
                duration: fields[2],
            })
        })
        .collect()
}
