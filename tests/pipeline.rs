//! The decode → upscale → encode pipeline on real ffmpeg, real ONNX Runtime and the real model.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{decode_frames, facts, psnr, run_ok, Clip, Run};
use liveup::hls::MediaPlaylist;
use liveup::pipeline::{self, Control, PipelineError, Progress};
use liveup::upscale::{self, DEFAULT_MODEL};

#[test]
fn a_clip_becomes_a_live_playlist_and_a_final_file_twice_its_size() {
    let run = Run::new();
    let source = Clip {
        seconds: 3.0,
        ..Clip::default()
    }
    .make(&run.dir.path().join("source clip.mp4"));
    let spec = run.spec(&source, 1);
    let mut upscaler = upscale::build(DEFAULT_MODEL, &common::cpu()).unwrap();
    let progress = Progress::default();

    let (summary, target_durations) = std::thread::scope(|scope| {
        let job = scope.spawn(|| {
            pipeline::run(
                &common::tools(),
                &spec,
                upscaler.as_mut(),
                &progress,
                &liveup::pipeline::Control::default(),
            )
        });
        let mut seen = BTreeSet::new();
        let playlist = run.hls_dir.join("stream.m3u8");
        while !job.is_finished() {
            if let Ok(text) = std::fs::read_to_string(&playlist) {
                let live = MediaPlaylist::parse(&text).expect("the live playlist is always whole");
                seen.insert(live.target_duration);
                if !live.ended {
                    assert_eq!(live.playlist_type.as_deref(), Some("EVENT"));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (job.join().unwrap().unwrap(), seen)
    });

    assert_eq!(summary.frames, 30);
    let (source_facts, output_facts) = (facts(&source), facts(&run.output));
    assert_eq!(
        (output_facts.width, output_facts.height),
        (2 * source_facts.width, 2 * source_facts.height)
    );
    assert_eq!(output_facts.frames, source_facts.frames);
    let frame = 1.0 / 10.0;
    assert!(
        (output_facts.video_seconds - source_facts.video_seconds).abs() <= frame,
        "{output_facts:?} vs {source_facts:?}"
    );
    assert!(output_facts.has_audio);

    let playlist = MediaPlaylist::parse(&run.playlist_text()).unwrap();
    assert_eq!(playlist.playlist_type.as_deref(), Some("EVENT"));
    assert!(playlist.ended, "EXT-X-ENDLIST once done");
    assert_eq!(playlist.target_duration, 1);
    assert!(
        target_durations.iter().all(|&t| t == 1),
        "TARGETDURATION changed mid-stream: {target_durations:?}"
    );
    assert_eq!(playlist.segments.len(), 3);
    let (last, whole) = playlist.segments.split_last().unwrap();
    assert!(
        whole.iter().all(|s| (s.duration - 1.0).abs() < 1e-6),
        "{whole:?}"
    );
    assert!(last.duration <= 1.0 + 1e-6);
    for segment in &playlist.segments {
        assert!(run.hls_dir.join(&segment.uri).is_file());
    }

    let mut decode = Command::new("ffmpeg");
    decode
        .args(["-v", "error", "-i"])
        .arg(run.hls_dir.join("stream.m3u8"))
        .args(["-f", "null", "-"]);
    let out = decode.output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn output_frames_are_the_model_applied_to_the_source_frames() {
    let run = Run::new();
    let source = Clip {
        audio: false,
        photo: true,
        seconds: 1.0,
        ..Clip::default()
    }
    .make(&run.dir.path().join("source.mp4"));
    run.upscale(&source, DEFAULT_MODEL, 1).unwrap();

    let sources = decode_frames(&source, None);
    let outputs = decode_frames(&run.output, None);
    let lanczos = decode_frames(&source, Some("scale=iw*2:ih*2:flags=lanczos"));
    assert_eq!(sources.len(), outputs.len());
    let mut model = upscale::build(DEFAULT_MODEL, &common::cpu()).unwrap();
    for index in [0, sources.len() / 2, sources.len() - 1] {
        let mut expected =
            liveup::pipeline::frames::Frame::new(outputs[index].width, outputs[index].height);
        model.upscale(&sources[index], &mut expected).unwrap();
        let to_model = psnr(&outputs[index], &expected);
        let to_lanczos = psnr(&outputs[index], &lanczos[index]);
        println!("frame {index}: {to_model:.2} dB to the model, {to_lanczos:.2} dB to lanczos");
        assert!(to_model >= 30.0, "frame {index}: {to_model:.2} dB");
        assert!(
            to_model >= to_lanczos + 3.0,
            "frame {index}: {to_model:.2} vs lanczos {to_lanczos:.2}"
        );
    }
}

/// Two frames in flight on two sessions of the uint8 graph: every frame of the film comes out in
/// its place, an odd count included (the last pair is half full), the same picture as one frame
/// at a time with float frames.
#[test]
fn frames_in_flight_come_out_in_the_films_order() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Clip {
        audio: false,
        photo: true,
        seconds: 1.1,
        ..Clip::default()
    }
    .make(&source_dir.path().join("source.mp4"));
    let outputs = |frames, in_flight| {
        let run = Run::new();
        let options = upscale::EngineOptions {
            frames,
            in_flight,
            ..common::cpu()
        };
        let mut upscaler = upscale::build(DEFAULT_MODEL, &options).unwrap();
        assert_eq!(upscaler.in_flight(), in_flight.max(1) as usize);
        liveup::pipeline::run(
            &common::tools(),
            &run.spec(&source, 1),
            upscaler.as_mut(),
            &liveup::pipeline::Progress::default(),
            &liveup::pipeline::Control::default(),
        )
        .unwrap();
        decode_frames(&run.output, None)
    };
    let one = outputs(upscale::FrameIo::Float, 1);
    let two = outputs(upscale::FrameIo::Uint8, 2);
    assert_eq!(one.len(), 11);
    assert_eq!(two.len(), one.len());
    for (index, frame) in two.iter().enumerate() {
        let same = psnr(frame, &one[index]);
        let neighbours = [index.checked_sub(1), Some(index + 1)]
            .into_iter()
            .flatten()
            .filter_map(|n| one.get(n))
            .map(|n| psnr(frame, n))
            .fold(0.0, f64::max);
        assert!(
            same >= 40.0 && same > neighbours,
            "frame {index}: {same:.2} dB to its own, {neighbours:.2} dB to a neighbour"
        );
    }
}

#[test]
fn a_source_without_audio_gives_an_output_without_audio() {
    let run = Run::new();
    let source = Clip {
        audio: false,
        seconds: 1.0,
        ..Clip::default()
    }
    .make(&run.dir.path().join("silent.mp4"));
    run.upscale(&source, DEFAULT_MODEL, 1).unwrap();
    assert!(!facts(&run.output).has_audio);
}

#[test]
fn odd_dimensions_are_upscaled_exactly() {
    let run = Run::new();
    let source = Clip {
        width: 161,
        height: 91,
        seconds: 0.5,
        extra: &["-c:v", "libx264", "-pix_fmt", "yuv444p", "-c:a", "aac"],
        ..Clip::default()
    }
    .make(&run.dir.path().join("odd.mkv"));
    let summary = run.upscale(&source, DEFAULT_MODEL, 1).unwrap();
    let out = facts(&run.output);
    assert_eq!((out.width, out.height), (322, 182));
    assert_eq!(out.frames, summary.frames);
}

#[test]
fn ten_bit_sources_with_other_audio_codecs_work() {
    let run = Run::new();
    let source = Clip {
        seconds: 1.0,
        extra: &["-c:v", "ffv1", "-pix_fmt", "yuv420p10le", "-c:a", "flac"],
        ..Clip::default()
    }
    .make(&run.dir.path().join("ten-bit.mkv"));
    run.upscale(&source, DEFAULT_MODEL, 1).unwrap();
    let out = facts(&run.output);
    assert_eq!((out.width, out.height, out.frames), (192, 108, 10));
    assert!(out.has_audio, "flac is transcoded to AAC, not dropped");
}

#[test]
fn variable_frame_rate_sources_become_constant_rate_and_keep_their_length() {
    // One second at 10 fps, then one second where every other frame is missing. MP4 reports the
    // average rate (so liveup knows it varies); Matroska does not.
    for container in ["mp4", "mkv"] {
        let run = Run::new();
        let source = Clip {
            extra: &[
                "-vf",
                "select='lt(n\\,10)+not(mod(n\\,2))'",
                "-fps_mode",
                "vfr",
                "-c:v",
                "libx264",
                "-c:a",
                "aac",
            ],
            ..Clip::default()
        }
        .make(&run.dir.path().join(format!("vfr.{container}")));
        let probed = liveup::media::probe(&common::tools(), &source).unwrap();
        assert_eq!(probed.variable_frame_rate, container == "mp4", "{probed:?}");
        let summary = run.upscale(&source, DEFAULT_MODEL, 1).unwrap();
        let out = facts(&run.output);
        // The source's last frame starts at 1.8 s and is shown for a tenth of a second.
        let source_end = common::last_frame_time(&source) + 0.1;
        let frame = 1.0 / probed.frame_rate.as_f64();
        assert!(
            (out.video_seconds - source_end).abs() <= frame,
            "{container}: {} s out of {source_end} s",
            out.video_seconds,
        );
        assert_eq!(out.frames, summary.frames);
        assert!(out.has_audio);
    }
}

#[test]
fn an_unreadable_input_is_a_clear_error_and_leaves_no_file() {
    let run = Run::new();
    let garbage = run.dir.path().join("not a film.mkv");
    std::fs::write(&garbage, b"this is not a matroska file").unwrap();
    let error = run.upscale(&garbage, DEFAULT_MODEL, 1).unwrap_err();
    assert!(matches!(error, PipelineError::Probe(_)), "{error:?}");
    assert!(error.to_string().contains("not a film.mkv"), "{error}");
    run.assert_no_final_file();

    let missing = run
        .upscale(&run.dir.path().join("gone.mkv"), DEFAULT_MODEL, 1)
        .unwrap_err();
    assert!(missing.to_string().contains("gone.mkv"), "{missing}");
    run.assert_no_final_file();
}

fn kill_mid_run(which: &str) -> (Run, PipelineError) {
    let run = Run::new();
    let source = Clip {
        seconds: 20.0,
        ..Clip::default()
    }
    .make(&run.dir.path().join("long.mp4"));
    let marker = run.dir.path().to_string_lossy().into_owned();
    let error = std::thread::scope(|scope| {
        let job = scope.spawn(|| run.upscale(&source, DEFAULT_MODEL, 1));
        while !run.hls_dir.join("segment_00000.ts").exists() {
            assert!(!job.is_finished(), "finished before it could be killed");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The decoder is the ffmpeg reading the source; the encoder is the one writing the tee.
        let pattern = if which == "decoder" {
            format!("-i {marker}/long.mp4 -map 0:v:0")
        } else {
            format!("{marker}/out/film.upscaled.ts.partial")
        };
        let pids = run_ok({
            let mut pgrep = Command::new("pgrep");
            pgrep.args(["-f", "--", &pattern]);
            pgrep
        });
        let pid = String::from_utf8(pids).unwrap();
        let pid = pid.lines().next().expect("the ffmpeg is running");
        run_ok({
            let mut kill = Command::new("kill");
            kill.args(["-9", pid]);
            kill
        });
        job.join().unwrap().unwrap_err()
    });
    (run, error)
}

#[test]
fn a_killed_decoder_stops_the_job_with_a_clear_error_and_no_final_file() {
    let (run, error) = kill_mid_run("decoder");
    let message = error.to_string();
    assert!(
        message.contains("decoder ffmpeg was killed by signal 9"),
        "{message}"
    );
    run.assert_no_final_file();
    let playlist = MediaPlaylist::parse(&run.playlist_text()).unwrap();
    assert!(!playlist.ended, "a failed job must not look finished");
}

#[test]
fn a_killed_encoder_stops_the_job_with_a_clear_error_and_no_final_file() {
    let (run, error) = kill_mid_run("encoder");
    let message = error.to_string();
    assert!(
        message.contains("encoder ffmpeg was killed by signal 9"),
        "{message}"
    );
    run.assert_no_final_file();
}

/// Indices of the complete segments in `dir`.
fn segments_on_disk(dir: &std::path::Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| liveup::job_dir::segment_index(e.unwrap().file_name().to_str()?))
        .collect();
    found.sort();
    found
}

fn assert_continuous(output: &std::path::Path, frames: u64, seconds: f64) {
    let out = facts(output);
    let mut times = common::video_frame_times(output);
    times.sort_by(f64::total_cmp);
    for pair in times.windows(2) {
        assert!(
            (pair[1] - pair[0] - 0.1).abs() < 0.002,
            "timestamps jump: {pair:?} in {times:?}"
        );
    }
    assert_eq!(out.frames, frames);
    assert!((out.video_seconds - seconds).abs() <= 0.1, "{out:?}");
    assert!(out.has_audio);
}

#[test]
fn a_run_stopped_midway_resumes_from_its_last_segment_and_assembles_a_continuous_file() {
    let run = Run::new();
    let source = Clip {
        seconds: 5.0,
        ..Clip::default()
    }
    .make(&run.dir.path().join("film.mkv"));
    let mut upscaler = upscale::build(DEFAULT_MODEL, &common::cpu()).unwrap();
    let control = Control::default();
    let first = std::thread::scope(|scope| {
        let job = scope.spawn(|| {
            pipeline::run(
                &common::tools(),
                &run.spec(&source, 1),
                upscaler.as_mut(),
                &Progress::default(),
                &control,
            )
        });
        // A segment is moved into place once the next one has begun.
        while !run.hls_dir.join("segment_00001.ts").exists() && !job.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        control.cancel();
        job.join().unwrap()
    });
    assert!(matches!(first, Err(PipelineError::Cancelled)), "{first:?}");
    run.assert_no_final_file();
    let done = segments_on_disk(&run.hls_dir);
    let resume_at = done.len() as u32;
    assert!(
        (2..5).contains(&resume_at) && done == (0..resume_at).collect::<Vec<_>>(),
        "{done:?}"
    );

    let mut resumed = run.spec(&source, 1);
    resumed.output = None;
    resumed.start_segment = resume_at;
    resumed.playlist_name = "resumed.m3u8".into();
    let summary = pipeline::run(
        &common::tools(),
        &resumed,
        upscaler.as_mut(),
        &Progress::default(),
        &Control::default(),
    )
    .unwrap();
    assert_eq!(summary.frames, u64::from(50 - resume_at * 10));
    assert_eq!(segments_on_disk(&run.hls_dir), (0..5).collect::<Vec<_>>());
    pipeline::assemble_final(
        &common::tools(),
        &liveup::job_dir::JobDir::at(&run.hls_dir),
        5,
        &run.output,
    )
    .unwrap();
    assert_continuous(&run.output, 50, 5.0);
}

#[test]
fn a_jump_ahead_then_filling_the_hole_gives_every_segment_once_and_continuous_timestamps() {
    let run = Run::new();
    let source = Clip {
        seconds: 5.0,
        ..Clip::default()
    }
    .make(&run.dir.path().join("film.mkv"));
    let mut upscaler = upscale::build(DEFAULT_MODEL, &common::cpu()).unwrap();
    let mut run_range = |start: u32, end: Option<u32>| {
        let mut spec = run.spec(&source, 1);
        spec.output = None;
        spec.start_segment = start;
        spec.end_segment = end;
        spec.playlist_name = format!("run-{start}.m3u8");
        pipeline::run(
            &common::tools(),
            &spec,
            upscaler.as_mut(),
            &Progress::default(),
            &Control::default(),
        )
        .unwrap()
    };
    assert_eq!(
        run_range(3, None).frames,
        20,
        "the jump: segments 3 and 4 first"
    );
    assert_eq!(segments_on_disk(&run.hls_dir), vec![3, 4]);
    let later = common::video_frame_times(&run.hls_dir.join("segment_00003.ts"));
    assert!(
        (later[0] - 3.0).abs() < 0.002,
        "segment 3 starts at 3 s: {later:?}"
    );
    assert_eq!(
        run_range(0, Some(3)).frames,
        30,
        "the hole behind it, and not one frame more"
    );
    assert_eq!(segments_on_disk(&run.hls_dir), (0..5).collect::<Vec<_>>());
    let earlier = common::video_frame_times(&run.hls_dir.join("segment_00002.ts"));
    assert!((earlier.last().unwrap() - 2.9).abs() < 0.002, "{earlier:?}");
    pipeline::assemble_final(
        &common::tools(),
        &liveup::job_dir::JobDir::at(&run.hls_dir),
        5,
        &run.output,
    )
    .unwrap();
    assert_continuous(&run.output, 50, 5.0);
}

#[test]
fn video_that_starts_after_the_audio_gains_no_frame_and_no_segment() {
    // Matroska with AAC: the video starts 23 ms after the audio (the AAC encoder's priming),
    // over half a frame at 24 fps. The encoder once delayed the frames by that much, and its
    // constant-rate sync filled the gap with a copy of the first frame: one frame more than
    // encoded, alone in a segment past the end, and the run failed as "damaged".
    let run = Run::new();
    let source = Clip {
        rate: 24,
        seconds: 4.0,
        ..Clip::default()
    }
    .make(&run.dir.path().join("film.mkv"));
    let probed = liveup::media::probe(&common::tools(), &source).unwrap();
    assert!(
        probed.video_delay_seconds * 24.0 > 0.5,
        "the source must start its video over half a frame late: {probed:?}"
    );
    let summary = run.upscale(&source, "lanczos", 2).unwrap();
    assert_eq!(summary.frames, 96);
    assert_eq!(segments_on_disk(&run.hls_dir), vec![0, 1]);
    for index in 0..2 {
        let name = liveup::job_dir::segment_name(index);
        let times = common::video_frame_times(&run.hls_dir.join(&name));
        assert_eq!(times.len(), 48, "{name}: {times:?}");
        assert!(
            (times[0] - 2.0 * f64::from(index)).abs() < 0.002,
            "{name}: {times:?}"
        );
    }
    let out = facts(&run.output);
    assert_eq!(out.frames, 96);
    assert!((out.video_seconds - 4.0).abs() < 0.002, "{out:?}");
    assert!(out.has_audio);

    // A run resumed at segment 1 makes the same segment.
    std::fs::remove_file(run.hls_dir.join("segment_00001.ts")).unwrap();
    let mut resumed = run.spec(&source, 2);
    resumed.output = None;
    resumed.start_segment = 1;
    resumed.playlist_name = "resumed.m3u8".into();
    let mut upscaler = upscale::build("lanczos", &common::cpu()).unwrap();
    let summary = pipeline::run(
        &common::tools(),
        &resumed,
        upscaler.as_mut(),
        &Progress::default(),
        &Control::default(),
    )
    .unwrap();
    assert_eq!(summary.frames, 48);
    assert_eq!(segments_on_disk(&run.hls_dir), vec![0, 1]);
    let times = common::video_frame_times(&run.hls_dir.join("segment_00001.ts"));
    assert_eq!(times.len(), 48, "{times:?}");
    assert!((times[0] - 2.0).abs() < 0.002, "{times:?}");
}
