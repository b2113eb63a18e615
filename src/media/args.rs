//! Argument lists for the two ffmpeg processes of a pipeline. Plain argv, built here and only
//! here, so file names with spaces, quotes, `;`, `$()` or newlines are never interpreted.

use std::ffi::OsString;
use std::path::Path;

use super::{MediaInfo, Rational};

pub const PLAYLIST_NAME: &str = "stream.m3u8";
pub const SEGMENT_PATTERN: &str = "segment_%05d.ts";
const AUDIO_BITRATE: &str = "192k";

/// Source → raw rgb24 frames on stdout, from `start_seconds` on, for `seconds` (or to the end);
/// `hwaccel` decodes on the GPU (`cuda`: NVDEC; ffmpeg falls back to the CPU for a codec the
/// GPU lacks) and hands the frames back to system memory. `threads`: the decoder's; `None` lets
/// ffmpeg choose.
pub fn decode(
    input: &Path,
    info: &MediaInfo,
    (start_seconds, seconds): (f64, Option<f64>),
    video_filter: Option<&str>,
    hwaccel: Option<&str>,
    threads: Option<u32>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = seek(start_seconds, seconds);
    if let Some(hwaccel) = hwaccel {
        args.extend(["-hwaccel".into(), hwaccel.into()]);
    }
    if let Some(threads) = threads {
        args.extend(["-threads".into(), threads.to_string().into()]);
    }
    args.extend(["-i".into(), input.into()]);
    args.extend(
        [
            "-map",
            "0:v:0",
            "-an",
            "-sn",
            "-dn",
            "-fps_mode",
            "cfr",
            "-r",
        ]
        .iter()
        .map(OsString::from),
    );
    args.push(info.frame_rate.to_string().into());
    // Rebased to zero before the constant-rate conversion, so a first frame that starts a
    // fraction of a frame late is not duplicated.
    let mut filters = String::from("setpts=PTS-STARTPTS");
    if let Some(filter) = video_filter {
        filters.push(',');
        filters.push_str(filter);
    }
    args.extend(["-vf".into(), filters.into()]);
    args.extend(
        ["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
            .iter()
            .map(OsString::from),
    );
    args
}

/// Input seeking: decoding restarts at the keyframe before and drops frames up to the exact
/// time; `-t` stops reading the input after `seconds`.
fn seek(start_seconds: f64, seconds: Option<f64>) -> Vec<OsString> {
    let mut args = Vec::new();
    if start_seconds > 0.0 {
        args.extend(["-ss".into(), format!("{start_seconds:.6}").into()]);
    }
    if let Some(seconds) = seconds {
        args.extend(["-t".into(), format!("{seconds:.6}").into()]);
    }
    args
}

/// How the upscaled frames are encoded and where they go.
#[derive(Debug, Clone)]
pub struct EncodePlan<'a> {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Rational,
    /// Delay of the video against the audio in the source (see `MediaInfo::video_delay_seconds`).
    pub video_delay_seconds: f64,
    /// The source, opened a second time for its audio; `None` when it has none.
    pub audio_source: Option<&'a Path>,
    pub segment_seconds: u32,
    /// The first segment made; a run that resumes or jumps starts past 0, numbering its
    /// segments and placing its timestamps where that segment belongs.
    pub start_segment: u32,
    /// Stop before this segment (`None`: at the end of the film).
    pub end_segment: Option<u32>,
    /// The playlist the muxer keeps (in the HLS folder).
    pub playlist_name: &'a str,
    /// Where the final file is teed to; `None` when it will be assembled from the segments.
    pub final_file: Option<&'a Path>,
    pub video_codec: &'a str,
    pub preset: &'a str,
    pub crf: u32,
    /// Encoder threads; `None` lets ffmpeg choose.
    pub threads: Option<u32>,
}

/// Raw rgb24 frames on stdin (+ the source's audio) → H.264, teed into the live HLS playlist
/// (run with the HLS folder as working directory) and the final MPEG-TS file.
pub fn encode(plan: &EncodePlan) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let start_seconds = f64::from(plan.start_segment * plan.segment_seconds);
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-f", "rawvideo", "-pix_fmt", "rgb24"]);
    push(&[
        "-s",
        &format!("{}x{}", plan.width, plan.height),
        "-framerate",
        &plan.frame_rate.to_string(),
        "-i",
        "pipe:0",
    ]);
    if let Some(source) = plan.audio_source {
        // The decoded frames are rebased to zero, and stay on the frame grid from zero that the
        // segments are cut on: the audio is cut where the video starts in the source instead.
        // (Delaying the frames, e.g. with -itsoffset, cannot work: the tee muxer makes ffmpeg
        // sync video at a constant rate, which fills a delay of half a frame or more with
        // copies of the first frame, so the encoder would write more frames than it was given.)
        args.extend(seek(
            start_seconds + plan.video_delay_seconds,
            plan.seconds(),
        ));
        args.push("-i".into());
        args.push(source.into());
    }
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-map", "0:v:0"]);
    if plan.width % 2 == 1 || plan.height % 2 == 1 {
        push(&["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]);
    }
    args.extend(
        video_encoder(
            plan.video_codec,
            plan.preset,
            plan.crf,
            plan.segment_seconds,
        )
        .into_iter()
        .map(OsString::from),
    );
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    if let Some(threads) = plan.threads {
        push(&["-threads", &threads.to_string()]);
    }
    if plan.audio_source.is_some() {
        // Always re-encoded, cut at the sample where the run starts: copied packets start and
        // end on their own frame grid, so the packets on both sides of a seam between two runs
        // would overlap. The encoder's priming frame (stamped before the run's start) is
        // dropped, so this run's audio starts exactly where its video does and where the run
        // before it stopped.
        push(&["-map", "1:a:0", "-c:a", "aac", "-b:a", AUDIO_BITRATE]);
        push(&["-bsf:a", "noise=drop=lt(pts\\,0)"]);
    }
    if plan.start_segment > 0 {
        // Timestamps continue where this run's first segment belongs.
        push(&["-output_ts_offset", &format!("{start_seconds:.6}")]);
    }
    push(&["-f", "tee"]);
    args.push(tee_outputs(plan));
    args
}

/// The video encoder and its options. Every encoder keeps the same rules: a keyframe (an IDR)
/// at each segment boundary and none elsewhere, and no B-frames (with them the first frames
/// decode before they show, the muxer shifts a run that starts at 0 to keep decode times
/// positive, and a run resumed later would not share that shift, so its segments would not line
/// up with the earlier ones). `quality` is x264's CRF, or NVENC's constant quality (`-cq`).
pub fn video_encoder(codec: &str, preset: &str, quality: u32, segment_seconds: u32) -> Vec<String> {
    let keyframes = format!("expr:gte(t,n_forced*{segment_seconds})");
    let quality = quality.to_string();
    let mut args: Vec<&str> = vec!["-c:v", codec, "-preset", preset];
    if is_nvenc(codec) {
        args.extend(["-tune", "hq", "-rc", "vbr", "-cq", &quality, "-b:v", "0"]);
        args.extend(["-pix_fmt", "yuv420p", "-force_key_frames", &keyframes]);
        // A forced keyframe is an IDR, and NVENC adds none at scene cuts.
        args.extend(["-forced-idr", "1", "-no-scenecut", "1", "-bf", "0"]);
    } else {
        args.extend([
            "-crf",
            &quality,
            "-pix_fmt",
            "yuv420p",
            "-force_key_frames",
            &keyframes,
        ]);
        args.extend(["-sc_threshold", "0", "-bf", "0"]);
    }
    args.into_iter().map(String::from).collect()
}

pub fn is_nvenc(codec: &str) -> bool {
    codec.ends_with("_nvenc")
}

fn tee_outputs(plan: &EncodePlan) -> OsString {
    let hls = format!(
        "[f=hls:hls_time={}:hls_list_size=0:hls_playlist_type=event:start_number={}:\
         hls_flags=temp_file+independent_segments:hls_segment_filename={SEGMENT_PATTERN}]{}",
        plan.segment_seconds, plan.start_segment, plan.playlist_name
    );
    let mut outputs = OsString::from(hls);
    if let Some(final_file) = plan.final_file {
        outputs.push("|[f=mpegts:onfail=abort]");
        outputs.push(escape_tee_filename(final_file));
    }
    outputs
}

impl EncodePlan<'_> {
    /// How much of the film this run covers, when it stops before the end.
    pub fn seconds(&self) -> Option<f64> {
        self.end_segment
            .map(|end| f64::from((end - self.start_segment) * self.segment_seconds))
    }
}

/// The tee muxer splits its argument with ffmpeg's tokenizer: a backslash makes the next byte
/// literal, so escaping every byte that is special to it leaves any file name intact.
fn escape_tee_filename(path: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut escaped = Vec::new();
    for &byte in path.as_os_str().as_bytes() {
        if b"\\'|[]:=,;\" \t\r\n".contains(&byte) {
            escaped.push(b'\\');
        }
        escaped.push(byte);
    }
    OsString::from_vec(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(vfr: bool) -> MediaInfo {
        MediaInfo {
            width: 161,
            height: 91,
            pix_fmt: "yuv420p".into(),
            frame_rate: Rational::new(25, 1),
            variable_frame_rate: vfr,
            duration_seconds: 2.0,
            video_delay_seconds: 0.0,
            audio_codec: None,
        }
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn every_encoder_keeps_the_keyframe_and_segment_rules() {
        let x264 = video_encoder("libx264", "veryfast", 18, 6).join(" ");
        assert_eq!(
            x264,
            "-c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p \
             -force_key_frames expr:gte(t,n_forced*6) -sc_threshold 0 -bf 0"
        );
        for codec in ["h264_nvenc", "hevc_nvenc"] {
            let nvenc = video_encoder(codec, "p5", 19, 4).join(" ");
            assert_eq!(
                nvenc,
                format!(
                    "-c:v {codec} -preset p5 -tune hq -rc vbr -cq 19 -b:v 0 -pix_fmt yuv420p \
                     -force_key_frames expr:gte(t,n_forced*4) -forced-idr 1 -no-scenecut 1 -bf 0"
                )
            );
        }
        assert!(is_nvenc("hevc_nvenc") && !is_nvenc("libx264"));
    }

    #[test]
    fn nvdec_decoding_is_asked_before_the_input() {
        let gpu = joined(&decode(
            Path::new("/m/a.mkv"),
            &info(false),
            (12.0, None),
            None,
            Some("cuda"),
            None,
        ));
        assert!(
            gpu.starts_with("-ss 12.000000 -hwaccel cuda -i /m/a.mkv "),
            "{gpu}"
        );
        let cpu = joined(&decode(
            Path::new("/m/a.mkv"),
            &info(false),
            (0.0, None),
            None,
            None,
            Some(1),
        ));
        assert!(!cpu.contains("hwaccel"), "{cpu}");
        assert!(cpu.starts_with("-threads 1 -i /m/a.mkv "), "{cpu}");
    }

    #[test]
    fn every_source_is_decoded_at_its_constant_average_rate() {
        for variable in [false, true] {
            let args = joined(&decode(
                Path::new("/m/a.mkv"),
                &info(variable),
                (0.0, None),
                None,
                None,
                None,
            ));
            assert!(args.contains("-fps_mode cfr -r 25/1"), "{args}");
        }
    }

    #[test]
    fn odd_outputs_are_padded_and_non_aac_audio_is_transcoded() {
        let plan = EncodePlan {
            width: 483,
            height: 273,
            frame_rate: Rational::new(25, 1),
            video_delay_seconds: 0.042,
            audio_source: Some(Path::new("/m/a.mkv")),
            segment_seconds: 6,
            start_segment: 0,
            end_segment: None,
            playlist_name: PLAYLIST_NAME,
            final_file: Some(Path::new("/out/a.ts.partial")),
            video_codec: "libx264",
            preset: "veryfast",
            crf: 18,
            threads: Some(1),
        };
        let args = joined(&encode(&plan));
        assert!(args.contains("pad=ceil(iw/2)*2:ceil(ih/2)*2"), "{args}");
        assert!(args.contains("-map 1:a:0 -c:a aac"), "{args}");
        assert!(args.contains("expr:gte(t,n_forced*6)"), "{args}");
        assert!(args.starts_with("-f rawvideo"), "{args}");
        assert!(!args.contains("-itsoffset"), "{args}");
        assert!(
            args.contains("-ss 0.042000 -i /m/a.mkv"),
            "the audio starts where the video does: {args}"
        );
    }

    #[test]
    fn a_resumed_run_seeks_both_inputs_and_continues_the_playlist() {
        let plan = EncodePlan {
            width: 192,
            height: 108,
            frame_rate: Rational::new(10, 1),
            video_delay_seconds: 0.0,
            audio_source: Some(Path::new("/m/a.mkv")),
            segment_seconds: 2,
            start_segment: 3,
            end_segment: Some(5),
            playlist_name: "run.m3u8",
            final_file: None,
            video_codec: "libx264",
            preset: "veryfast",
            crf: 18,
            threads: None,
        };
        let args = joined(&encode(&plan));
        assert!(args.starts_with("-f rawvideo"), "{args}");
        assert!(
            args.contains("-ss 6.000000 -t 4.000000 -i /m/a.mkv"),
            "{args}"
        );
        assert!(
            args.contains("-c:a aac -b:a 192k -bsf:a noise=drop=lt(pts\\,0) -output_ts_offset 6.000000 -f tee"),
            "{args}"
        );
        assert!(args.contains("start_number=3:"), "{args}");
        assert!(args.ends_with("]run.m3u8"), "{args}");
        assert!(!args.contains("mpegts"), "no final file branch: {args}");
        let decode = joined(&decode(
            Path::new("/m/a.mkv"),
            &info(false),
            (6.0, Some(4.0)),
            None,
            None,
            None,
        ));
        assert!(
            decode.starts_with("-ss 6.000000 -t 4.000000 -i /m/a.mkv"),
            "{decode}"
        );
    }

    #[test]
    fn tee_file_names_are_escaped() {
        let name = escape_tee_filename(Path::new("/out/a|b [x]: it's.ts"));
        assert_eq!(name, OsString::from(r"/out/a\|b\ \[x\]\:\ it\'s.ts"));
    }
}
