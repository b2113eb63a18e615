//! Runs that start mid-film (a resume, a retry, a seek, a hole being filled) join the runs
//! before and after them exactly: every stream's timestamps keep increasing across each seam,
//! and audio and video start together in every segment.

use std::path::Path;

use liveup::job_dir::segment_name;
use liveup::pipeline::{self, Control, PipelineSpec, Progress};
use liveup::upscale;

use crate::common::{self, decode_errors, packets, Clip};

/// Makes segments `start..end` of `source` in `hls_dir` the way the daemon's runs do.
fn run(source: &Path, hls_dir: &Path, start: u32, end: Option<u32>) {
    let mut upscaler = upscale::build("lanczos", &common::cpu()).unwrap();
    let spec = PipelineSpec {
        input: source.to_path_buf(),
        output: None,
        hls_dir: hls_dir.to_path_buf(),
        segment_seconds: 1,
        start_segment: start,
        end_segment: end,
        playlist_name: "encoder.m3u8".into(),
        encoder: pipeline::EncoderSettings::default(),
        min_free_bytes: 0,
    };
    pipeline::run(
        &common::tools(),
        &spec,
        upscaler.as_mut(),
        &Progress::default(),
        &Control::default(),
    )
    .unwrap_or_else(|e| panic!("run {start}..{end:?}: {e}"));
}

/// Strictly increasing decode and presentation times in `kind`'s packets.
pub fn assert_strictly_increasing(path: &Path, kind: &str) {
    let packets = packets(path, kind);
    assert!(!packets.is_empty(), "{}: no {kind} packets", path.display());
    for pair in packets.windows(2) {
        assert!(
            pair[1].dts > pair[0].dts && pair[1].pts > pair[0].pts,
            "{}: {kind} packet at {:?} after {:?}",
            path.display(),
            pair[1],
            pair[0]
        );
    }
}

/// Audio and video of every segment start within one video frame of each other.
pub fn assert_segments_in_sync(hls_dir: &Path, count: u32, frame_seconds: f64) {
    for index in 0..count {
        let segment = hls_dir.join(segment_name(index));
        let video = packets(&segment, "v");
        let audio = packets(&segment, "a");
        let first = |p: &[common::Packet]| p.iter().map(|p| p.pts).fold(f64::INFINITY, f64::min);
        let (v, a) = (first(&video), first(&audio));
        assert!(
            (v - a).abs() <= frame_seconds + 1e-3,
            "segment {index}: video starts at {v}, audio at {a}"
        );
    }
}

/// The final file both ways: the segments concatenated (MPEG-TS) and copied into an MP4.
fn assemble_and_check(hls_dir: &Path, count: u32, out: &Path) {
    let dir = liveup::job_dir::JobDir::at(hls_dir);
    let as_mp4 = out.with_extension("mp4");
    for out in [out, as_mp4.as_path()] {
        pipeline::assemble_final(&common::tools(), &dir, count, out).unwrap();
        let errors = decode_errors(out);
        assert!(
            errors.is_empty(),
            "{} decodes with: {errors}",
            out.display()
        );
        assert_strictly_increasing(out, "v");
        assert_strictly_increasing(out, "a");
    }
    assert_segments_in_sync(hls_dir, count, 0.1);
}

#[test]
fn a_run_resumed_mid_film_joins_the_first_one_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let source = Clip {
        seconds: 5.0,
        ..Clip::default()
    }
    .make(&dir.path().join("film.mp4"));
    let hls = dir.path().join("hls");
    run(&source, &hls, 0, Some(2));
    run(&source, &hls, 2, None);
    assemble_and_check(&hls, 5, &dir.path().join("final.ts"));
}

#[test]
fn a_hole_filled_after_a_jump_joins_both_sides_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let source = Clip {
        seconds: 5.0,
        extra: &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "libopus"],
        ..Clip::default()
    }
    .make(&dir.path().join("film.mkv"));
    let hls = dir.path().join("hls");
    run(&source, &hls, 3, None);
    run(&source, &hls, 0, Some(1));
    run(&source, &hls, 1, Some(3));
    assemble_and_check(&hls, 5, &dir.path().join("final.ts"));
}
