//! One film through the three stages: decode (ffmpeg) → upscale (this process) → encode (ffmpeg,
//! teed into live HLS and the final file). Each stage runs on its own thread; bounded channels and
//! fixed frame pools join them, so a slow stage holds the others back and memory stays flat.
//!
//! Any stage failing stops the others: both ffmpeg children are killed and reaped, the final file
//! is never left under its final name, and the first error (with ffmpeg's stderr) is returned.

pub mod cmaf;
mod decode;
pub mod derive;
mod encode;
pub mod frames;
pub mod progress;
mod promote;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::disk::{self, LowSpace};
use crate::job_dir::{partial_path, segment_index, JobDir};
use crate::media::process::{Process, ProcessError};
use crate::media::{args, check, probe, MediaInfo, ProbeError, Tools};
use crate::thread_plan;
use crate::upscale::{UpscaleError, Upscaler};
use frames::Frame;
pub use progress::{Progress, Snapshot};
use promote::{Ending, Promoter};

/// Frames in flight per channel; with the pools below this bounds memory to a handful of frames.
const CHANNEL_DEPTH: usize = 2;
/// Frames each pool holds beyond those the upscaler works on at once.
const POOL_SPARE: usize = CHANNEL_DEPTH + 1;
/// How often finished segments and free space are looked at while the stages run.
const PROMOTE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Upscale(#[from] UpscaleError),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("the decoder stopped in the middle of a frame ({got} of {expected} bytes)")]
    TruncatedFrame { got: usize, expected: usize },
    #[error("the source decoded to no frames at all")]
    NoFrames,
    #[error("{name} came out damaged: {reason}{}", free_note(*free_mib))]
    DamagedSegment {
        name: String,
        reason: String,
        free_mib: Option<u64>,
    },
    #[error("the final file came out damaged: {0}")]
    DamagedFinal(String),
    #[error(transparent)]
    LowSpace(#[from] LowSpace),
    #[error("the output {0} would overwrite the input")]
    OutputIsInput(PathBuf),
    #[error(
        "the source ends early: only {decoded_seconds:.1} s of the {probed_seconds:.1} s its \
         container announces could be decoded (a truncated or damaged file?)"
    )]
    EndsEarly {
        decoded_seconds: f64,
        probed_seconds: f64,
    },
    #[error("cancelled")]
    Cancelled,
    /// A stage stopped because another one failed; never the error reported.
    #[error("stopped because another stage failed")]
    Aborted,
}

/// What to upscale and where the results go.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub input: PathBuf,
    /// The final file, teed from the encoder; written as `<output>.partial` and renamed when
    /// whole. `None` when the caller assembles it from the segments instead.
    pub output: Option<PathBuf>,
    /// Receives `stream.m3u8` and `segment_NNNNN.ts`.
    pub hls_dir: PathBuf,
    pub segment_seconds: u32,
    /// The first segment to make; its number and timestamps are where it belongs in the film.
    /// A run from 0 to the end starts a fresh folder; any other run keeps the segments there.
    pub start_segment: u32,
    /// Stop before this segment (`None`: at the end of the film).
    pub end_segment: Option<u32>,
    /// The EVENT playlist of this run's segments, written in `hls_dir` as each is checked.
    pub playlist_name: String,
    pub encoder: EncoderSettings,
    /// The run stops (`LowSpace`) when less than this is free where it writes; 0: never.
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct EncoderSettings {
    pub codec: String,
    pub preset: String,
    /// x264's CRF, or NVENC's constant quality.
    pub crf: u32,
    /// Decode the source on the GPU too (`cuda`) when the frames are encoded there.
    pub hwaccel: Option<String>,
    /// Threads of the decoder and of the encoder ffmpeg; 0: see [`thread_plan::ffmpeg_threads`].
    pub ffmpeg_threads: u32,
}

impl Default for EncoderSettings {
    fn default() -> EncoderSettings {
        EncoderSettings::for_codec("libx264")
    }
}

/// The encoders `encoder` may name besides `auto`.
pub const ENCODERS: [&str; 3] = ["libx264", "h264_nvenc", "hevc_nvenc"];

impl EncoderSettings {
    pub fn for_codec(codec: &str) -> EncoderSettings {
        let nvenc = args::is_nvenc(codec);
        EncoderSettings {
            codec: codec.to_string(),
            preset: if nvenc { "p5" } else { "veryfast" }.into(),
            crf: if nvenc { 19 } else { 18 },
            hwaccel: nvenc.then(|| "cuda".to_string()),
            ffmpeg_threads: 0,
        }
    }

    /// The encoder for `configured` (`auto` or one of [`ENCODERS`]): `auto` takes NVENC when
    /// the network runs on a GPU (`device` "CUDA:0", …) and this ffmpeg has `h264_nvenc`, and
    /// decodes with `-hwaccel cuda` then when it has that too; else libx264. A named NVENC this
    /// ffmpeg lacks, or with no NVIDIA GPU (`gpu`: why there is none), is an error.
    pub fn choose(
        configured: &str,
        device: &str,
        has_encoder: impl Fn(&str) -> bool,
        has_cuda_hwaccel: bool,
        gpu: Result<(), String>,
    ) -> Result<EncoderSettings, String> {
        let on_gpu = device.starts_with("CUDA") || device.starts_with("TensorRT");
        let codec = match configured {
            "auto" if on_gpu && has_encoder("h264_nvenc") => "h264_nvenc",
            "auto" => "libx264",
            named if ENCODERS.contains(&named) => named,
            other => {
                return Err(format!(
                    "unknown encoder {other:?}: use auto, {}",
                    ENCODERS.join(", ")
                ))
            }
        };
        if !has_encoder(codec) {
            return Err(format!(
                "encoder {codec} is not in this ffmpeg (liveup doctor lists what it has)"
            ));
        }
        if args::is_nvenc(codec) {
            gpu.map_err(|why| format!("encoder {codec} needs an NVIDIA GPU: {why}"))?;
        }
        let mut settings = EncoderSettings::for_codec(codec);
        if !(on_gpu && has_cuda_hwaccel) {
            settings.hwaccel = None;
        }
        Ok(settings)
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub frames: u64,
    pub seconds: f64,
    pub fps: f64,
    /// Share of the run the upscaler was working rather than waiting on ffmpeg.
    pub upscaler_busy: f64,
    pub source: MediaInfo,
    pub output_width: u32,
    pub output_height: u32,
    pub playlist: PathBuf,
    pub output: Option<PathBuf>,
}

/// How another thread steers a running pipeline, and hears of its segments.
#[derive(Debug, Default)]
pub struct Control {
    steering: Mutex<Steering>,
    /// Wakes a paused decoder when it may go on or must stop.
    changed: Condvar,
    on_segment: Option<SegmentHook>,
}

/// Called with a segment's index once it is checked and under its final name.
pub struct SegmentHook(Box<dyn Fn(u32) + Send + Sync>);

impl std::fmt::Debug for SegmentHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentHook")
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Steering {
    cancel: bool,
    pause: bool,
}

impl Control {
    /// A control that also reports each segment moved into place.
    pub fn reporting_segments(hook: impl Fn(u32) + Send + Sync + 'static) -> Control {
        Control {
            on_segment: Some(SegmentHook(Box::new(hook))),
            ..Control::default()
        }
    }

    pub(crate) fn segment_landed(&self, index: u32) {
        if let Some(hook) = &self.on_segment {
            (hook.0)(index);
        }
    }

    /// Stop: the run ends with [`PipelineError::Cancelled`].
    pub fn cancel(&self) {
        self.steering.lock().unwrap().cancel = true;
        self.changed.notify_all();
    }

    /// Lets the next run go on with this control after a cancelled one.
    pub fn clear_cancel(&self) {
        self.steering.lock().unwrap().cancel = false;
    }

    /// Hold: no frame is decoded (ffmpeg blocks on its full pipe, the network waits) until
    /// cleared.
    pub fn set_paused(&self, pause: bool) {
        let mut steering = self.steering.lock().unwrap();
        if steering.pause != pause {
            steering.pause = pause;
            self.changed.notify_all();
        }
    }

    /// Blocks while paused; returns whether the run must stop.
    pub(crate) fn wait_while_paused(&self) -> bool {
        let steering = self
            .changed
            .wait_while(self.steering.lock().unwrap(), |s| s.pause && !s.cancel)
            .unwrap();
        steering.cancel
    }
}

pub(crate) enum Message {
    Frame(Frame),
    End,
}

pub fn run(
    tools: &Tools,
    spec: &PipelineSpec,
    upscaler: &mut dyn Upscaler,
    progress: &Progress,
    control: &Control,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let input = spec
        .input
        .canonicalize()
        .map_err(|e| PipelineError::Io(format!("cannot open {}", spec.input.display()), e))?;
    let info = probe(tools, &input)?;
    let output = spec.output.as_deref().map(absolute_output).transpose()?;
    if output.as_ref() == Some(&input) {
        return Err(PipelineError::OutputIsInput(input));
    }
    prepare_hls_dir(spec)?;
    disk::ensure_free(&spec.hls_dir, spec.min_free_bytes)?;
    if let Some(output) = &output {
        disk::ensure_free(
            output.parent().unwrap_or(Path::new("/")),
            spec.min_free_bytes,
        )?;
    }
    let partial = output.as_deref().map(partial_path);
    let start_seconds = f64::from(spec.start_segment * spec.segment_seconds);
    let run_seconds = spec
        .end_segment
        .map(|end| f64::from(end.saturating_sub(spec.start_segment) * spec.segment_seconds));

    let scale = upscaler.scale();
    let filter = upscaler.decoder_filter();
    let (out_w, out_h) = (info.width * scale, info.height * scale);
    let (in_w, in_h) = if filter.is_some() {
        (out_w, out_h)
    } else {
        (info.width, info.height)
    };
    let frames_before = (start_seconds * info.frame_rate.as_f64()).round() as u64;
    let frames_in_run = run_seconds.map(|s| (s * info.frame_rate.as_f64()).round() as u64);
    let remaining = info.expected_frames().saturating_sub(frames_before);
    progress.start(
        frames_in_run.map_or(remaining, |n| n.min(remaining)),
        info.frame_rate.as_f64(),
    );

    let mut promoter = Promoter::new(tools, control, spec, info.frame_rate.as_f64());
    std::fs::create_dir_all(promoter.staging())
        .map_err(|e| PipelineError::Io(format!("creating {}", promoter.staging().display()), e))?;

    let ffmpeg_threads = thread_plan::ffmpeg_threads(
        spec.encoder.ffmpeg_threads,
        crate::upscale::runs_on_cpu(&upscaler.device()),
    );
    let mut decode_command = tools.ffmpeg_command();
    decode_command.args(args::decode(
        &input,
        &info,
        (start_seconds, run_seconds),
        filter.as_deref(),
        spec.encoder.hwaccel.as_deref(),
        ffmpeg_threads,
    ));
    let mut decoder = Process::spawn("decoder ffmpeg", decode_command, false, true)?;

    let plan = args::EncodePlan {
        width: out_w,
        height: out_h,
        frame_rate: info.frame_rate,
        video_delay_seconds: info.video_delay_seconds,
        audio_source: info.audio_codec.is_some().then_some(input.as_path()),
        segment_seconds: spec.segment_seconds,
        start_segment: spec.start_segment,
        end_segment: spec.end_segment,
        playlist_name: &spec.playlist_name,
        final_file: partial.as_deref(),
        video_codec: &spec.encoder.codec,
        preset: &spec.encoder.preset,
        crf: spec.encoder.crf,
        threads: ffmpeg_threads,
    };
    let mut encode_command = tools.ffmpeg_command();
    encode_command
        .args(args::encode(&plan))
        .current_dir(promoter.staging());
    let mut encoder = Process::spawn("encoder ffmpeg", encode_command, true, false)?;

    let failure = Failure::new(vec![
        Arc::clone(&decoder.process),
        Arc::clone(&encoder.process),
    ]);
    let stdout = decoder.stdout.take().expect("decoder stdout is piped");
    let stdin = encoder.stdin.take().expect("encoder stdin is piped");
    let (decoded_tx, decoded_rx) = sync_channel(CHANNEL_DEPTH);
    let (upscaled_tx, upscaled_rx) = sync_channel(CHANNEL_DEPTH);
    let pool_size = POOL_SPARE + upscaler.in_flight().max(1);
    let (free_inputs, give_back_inputs) = frames::pool(pool_size, in_w, in_h);
    let (free_outputs, give_back_outputs) = frames::pool(pool_size, out_w, out_h);
    let (stage_ended, stages_ending) = channel::<()>();

    std::thread::scope(|scope| {
        let failure = &failure;
        let decoder = &decoder.process;
        let encoder = &encoder.process;
        let ended = stage_ended.clone();
        scope.spawn(move || {
            failure.record(decode::read_frames(
                stdout,
                decoder,
                free_inputs,
                decoded_tx,
                control,
            ));
            let _ = ended.send(());
        });
        let ended = stage_ended.clone();
        scope.spawn(move || {
            failure.record(infer(
                upscaler,
                progress,
                decoded_rx,
                give_back_inputs,
                free_outputs,
                upscaled_tx,
            ));
            let _ = ended.send(());
        });
        let ended = stage_ended;
        scope.spawn(move || {
            failure.record(encode::write_frames(
                stdin,
                encoder,
                upscaled_rx,
                give_back_outputs,
                progress,
            ));
            let _ = ended.send(());
        });
        // Meanwhile, on this thread: every segment the encoder closes is checked and moved
        // into place; damage or a filling disk stops the stages.
        let mut running = 3;
        while running > 0 {
            if stages_ending.recv_timeout(PROMOTE_EVERY).is_ok() {
                running -= 1;
            }
            if failure.happened() {
                continue;
            }
            if let Err(error) = promoter.promote_finished() {
                failure.record(Err(error));
            }
        }
    });

    let finished = progress.snapshot();
    let frames_done = finished.frames_done;
    let ending = match failure.take() {
        Some(error) => Err(error),
        None if frames_done == 0 => Err(PipelineError::NoFrames),
        None => Ok(()),
    };
    let outcome = match ending {
        Ok(()) => promoter
            .finish(Ending::Clean {
                frames: frames_done,
                film_end: spec.end_segment.is_none(),
            })
            .and_then(|()| match (&partial, &output) {
                (Some(partial), Some(output)) => finish_output(tools, partial, output, frames_done),
                _ => Ok(()),
            }),
        Err(error) => {
            let _ = promoter.finish(Ending::Failed);
            Err(error)
        }
    };
    if let Err(error) = outcome {
        if let Some(partial) = &partial {
            let _ = std::fs::remove_file(partial);
        }
        return Err(error);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Summary {
        frames: frames_done,
        seconds,
        fps: frames_done as f64 / seconds,
        upscaler_busy: finished.upscaler_busy,
        source: info,
        output_width: out_w,
        output_height: out_h,
        playlist: spec.hls_dir.join(&spec.playlist_name),
        output,
    })
}

/// The teed final file gets its final name only when it holds every frame encoded.
fn finish_output(
    tools: &Tools,
    partial: &Path,
    output: &Path,
    frames: u64,
) -> Result<(), PipelineError> {
    let contents = check::read_back(tools, partial).map_err(PipelineError::DamagedFinal)?;
    if contents.video_packets != frames {
        return Err(PipelineError::DamagedFinal(format!(
            "it holds {} of the {frames} frames encoded",
            contents.video_packets
        )));
    }
    std::fs::rename(partial, output)
        .map_err(|e| PipelineError::Io(format!("finishing {}", output.display()), e))
}

fn free_note(free_mib: Option<u64>) -> String {
    match free_mib {
        Some(free) => format!(" ({free} MiB free on its disk: full disk?)"),
        None => String::new(),
    }
}

fn infer(
    upscaler: &mut dyn Upscaler,
    progress: &Progress,
    decoded: Receiver<Message>,
    give_back_inputs: SyncSender<Frame>,
    free_outputs: Receiver<Frame>,
    upscaled: SyncSender<Message>,
) -> Result<(), PipelineError> {
    let together = upscaler.in_flight().max(1);
    let mut batch: Vec<(Frame, Frame)> = Vec::with_capacity(together);
    loop {
        let ended = match decoded.recv().map_err(|_| PipelineError::Aborted)? {
            Message::Frame(frame) => {
                let out = free_outputs.recv().map_err(|_| PipelineError::Aborted)?;
                batch.push((frame, out));
                false
            }
            Message::End => true,
        };
        if batch.len() == together || (ended && !batch.is_empty()) {
            let started = Instant::now();
            let mut pairs: Vec<(&Frame, &mut Frame)> = batch
                .iter_mut()
                .map(|(input, out)| (&*input, out))
                .collect();
            upscaler.upscale_together(&mut pairs)?;
            progress.upscaled_in(started.elapsed());
            for (frame, out) in batch.drain(..) {
                let _ = give_back_inputs.send(frame);
                upscaled
                    .send(Message::Frame(out))
                    .map_err(|_| PipelineError::Aborted)?;
            }
        }
        if ended {
            return upscaled
                .send(Message::End)
                .map_err(|_| PipelineError::Aborted);
        }
    }
}

/// The first error any stage hit; recording one kills both ffmpeg children so that every other
/// stage unblocks and stops.
struct Failure {
    first: Mutex<Option<PipelineError>>,
    processes: Vec<Arc<Process>>,
}

impl Failure {
    fn new(processes: Vec<Arc<Process>>) -> Failure {
        Failure {
            first: Mutex::new(None),
            processes,
        }
    }

    fn record(&self, result: Result<(), PipelineError>) {
        let Err(error) = result else { return };
        {
            let mut first = self.first.lock().unwrap();
            let replaces = match &*first {
                None => true,
                Some(PipelineError::Aborted) => !matches!(error, PipelineError::Aborted),
                Some(_) => false,
            };
            if replaces {
                *first = Some(error);
            }
        }
        for process in &self.processes {
            process.kill();
        }
    }

    fn happened(&self) -> bool {
        self.first.lock().unwrap().is_some()
    }

    fn take(&self) -> Option<PipelineError> {
        self.first.lock().unwrap().take()
    }
}

fn absolute_output(output: &Path) -> Result<PathBuf, PipelineError> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| PipelineError::Io(format!("creating {}", parent.display()), e))?;
    let parent = parent
        .canonicalize()
        .map_err(|e| PipelineError::Io(format!("resolving {}", parent.display()), e))?;
    let name = output.file_name().ok_or_else(|| {
        PipelineError::Io(
            format!("{} names no file", output.display()),
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    Ok(parent.join(name))
}

/// A run over the whole film starts a fresh folder: the playlist and segments of an earlier
/// run go. Any other run keeps the segments outside its range and drops what is inside it, and
/// everything a killed run left unchecked in the staging folder.
fn prepare_hls_dir(spec: &PipelineSpec) -> Result<(), PipelineError> {
    let dir = &spec.hls_dir;
    let io = |e| PipelineError::Io(format!("preparing {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    match std::fs::remove_dir_all(JobDir::at(dir).staging()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let whole_film = spec.start_segment == 0 && spec.end_segment.is_none();
    let in_range = |index: u32| {
        whole_film
            || (index >= spec.start_segment && spec.end_segment.is_none_or(|end| index < end))
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let stale = name.ends_with(".tmp")
            || name == spec.playlist_name
            || segment_index(name).is_some_and(in_range);
        if stale {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}

/// Writes the final file from segments `0..count` of `hls_dir`, as `<output>.partial` renamed
/// when whole. MPEG-TS segments with continuous timestamps concatenate into one valid stream;
/// an `.mp4` output is that stream copied into MP4 with its index (`moov`) at the front, so a
/// player (Jellyfin's web client included) starts it at once.
pub fn assemble_final(
    tools: &Tools,
    dir: &JobDir,
    count: u32,
    output: &Path,
) -> Result<(), PipelineError> {
    let output = absolute_output(output)?;
    let partial = partial_path(&output);
    let mp4 = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
    let result = if mp4 {
        assemble_mp4(tools, dir, count, &partial)
    } else {
        concatenate(dir, count, &partial)
            .map_err(|e| PipelineError::Io(format!("assembling {}", output.display()), e))
    };
    let renamed = result.and_then(|()| {
        std::fs::rename(&partial, &output)
            .map_err(|e| PipelineError::Io(format!("naming {}", output.display()), e))
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    renamed
}

fn concatenate(dir: &JobDir, count: u32, into: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create(into)?;
    for index in 0..count {
        let mut segment = std::fs::File::open(dir.segment(index))?;
        std::io::copy(&mut segment, &mut file)?;
    }
    file.sync_all()
}

fn assemble_mp4(tools: &Tools, dir: &JobDir, count: u32, into: &Path) -> Result<(), PipelineError> {
    let mut command = tools.ffmpeg_command();
    command
        .args(["-f", "mpegts", "-i", "pipe:0", "-map", "0", "-c", "copy"])
        .args(["-movflags", "+faststart", "-f", "mp4"])
        .arg(into);
    let mut spawned = Process::spawn("ffmpeg", command, true, false)?;
    let mut stdin = spawned.stdin.take().expect("ffmpeg's stdin is piped");
    let fed = (0..count).try_for_each(|index| {
        let mut segment = std::fs::File::open(dir.segment(index))?;
        std::io::copy(&mut segment, &mut stdin).map(drop)
    });
    drop(stdin);
    if let Err(e) = fed {
        spawned.process.kill();
        let _ = spawned.process.wait();
        return Err(PipelineError::Io(
            "feeding the segments to ffmpeg".into(),
            e,
        ));
    }
    spawned.process.wait()?;
    std::fs::File::open(into)
        .and_then(|f| f.sync_all())
        .map_err(|e| PipelineError::Io(format!("writing {}", into.display()), e))
}

#[cfg(test)]
mod encoder_tests {
    use super::*;

    #[test]
    fn auto_takes_nvenc_only_with_the_network_on_a_gpu_and_nvenc_in_ffmpeg() {
        let all = |_: &str| true;
        let only_x264 = |codec: &str| codec == "libx264";
        let no_gpu = || Err("no NVIDIA driver".to_string());
        let gpu = EncoderSettings::choose("auto", "CUDA:0", all, true, Ok(())).unwrap();
        assert_eq!(
            (gpu.codec.as_str(), gpu.hwaccel.as_deref()),
            ("h264_nvenc", Some("cuda"))
        );
        assert_eq!(gpu.preset, "p5");
        let no_nvdec = EncoderSettings::choose("auto", "CUDA:1", all, false, Ok(())).unwrap();
        assert_eq!(
            (no_nvdec.codec.as_str(), no_nvdec.hwaccel),
            ("h264_nvenc", None)
        );
        let cpu = EncoderSettings::choose("auto", "CPU", all, true, no_gpu()).unwrap();
        assert_eq!((cpu.codec.as_str(), cpu.hwaccel), ("libx264", None));
        let plain_ffmpeg =
            EncoderSettings::choose("auto", "CUDA:0", only_x264, true, Ok(())).unwrap();
        assert_eq!(plain_ffmpeg.codec, "libx264");
        let hevc = EncoderSettings::choose("hevc_nvenc", "CUDA:0", all, true, Ok(())).unwrap();
        assert_eq!(
            (hevc.codec.as_str(), hevc.hwaccel.as_deref()),
            ("hevc_nvenc", Some("cuda"))
        );
        let named = EncoderSettings::choose("libx264", "CUDA:0", all, true, Ok(())).unwrap();
        assert_eq!((named.codec.as_str(), named.hwaccel), ("libx264", None));
    }

    #[test]
    fn a_named_encoder_that_cannot_work_is_refused_saying_why() {
        let all = |_: &str| true;
        let only_x264 = |codec: &str| codec == "libx264";
        let all_again = |_: &str| true;
        let error = EncoderSettings::choose(
            "h264_nvenc",
            "CPU",
            all,
            true,
            Err("no NVIDIA driver".into()),
        )
        .unwrap_err();
        assert!(
            error.contains("needs an NVIDIA GPU: no NVIDIA driver"),
            "{error}"
        );
        let error =
            EncoderSettings::choose("hevc_nvenc", "CUDA:0", only_x264, true, Ok(())).unwrap_err();
        assert!(error.contains("not in this ffmpeg"), "{error}");
        let error = EncoderSettings::choose("x265", "CPU", all_again, true, Ok(())).unwrap_err();
        assert!(
            error.contains("use auto, libx264, h264_nvenc, hevc_nvenc"),
            "{error}"
        );
    }
}
