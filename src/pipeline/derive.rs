//! A lower rung's segment, made from the top rung's segment of the same moment: scaled and
//! encoded at the rung's bitrate with the timestamps kept, audio copied. Every rung's segment N
//! therefore starts at the same instant, on a keyframe, so a player may change rung at any
//! segment boundary; no frame is upscaled twice.
//!
//! The result is written under a dot name beside its final one, read back (as many frames as
//! the top segment, a keyframe first) and only then renamed: a rung segment that exists is whole.
//! As CMAF, the video goes alone into its rung's track, and the upscaled rung's own segments are
//! repackaged (copied, not encoded) into a video track and the audio track.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::cmaf::{self, file_name, staging};
use crate::job_dir::{JobDir, AUDIO_TRACK};
use crate::media::{check, process, Tools};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RungTarget {
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
}

/// The ffmpeg arguments that make `out` (MPEG-TS, audio copied) from `top` (after
/// `ffmpeg_command`'s own).
pub fn derive_args(top: &Path, out: &Path, rung: &RungTarget) -> Vec<OsString> {
    let mut args = encode_args(top, rung, true);
    args.extend(["-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts"].map(OsString::from));
    args.push(out.into());
    args
}

/// The same picture as a CMAF video track's fragment (no audio: the audio track has it).
pub fn derive_cmaf_args(top: &Path, out: &Path, rung: &RungTarget) -> Vec<OsString> {
    let mut args = encode_args(top, rung, false);
    args.extend(cmaf::fragmented_output(out));
    args
}

fn encode_args(top: &Path, rung: &RungTarget, with_audio: bool) -> Vec<OsString> {
    let kbps = rung.kbps;
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(Into::into));
    push(&["-copyts", "-i"]);
    args.push(top.into());
    if with_audio {
        args.extend(["-map", "0:a?", "-c:a", "copy"].map(OsString::from));
    }
    let mut push = |items: &[String]| args.extend(items.iter().map(Into::into));
    push(&[
        "-map".into(),
        "0:v:0".into(),
        "-vf".into(),
        format!(
            "scale={}:{}:flags=bicubic,format=yuv420p",
            rung.width, rung.height
        ),
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "veryfast".into(),
        "-b:v".into(),
        format!("{kbps}k"),
        "-maxrate".into(),
        format!("{}k", kbps * 3 / 2),
        "-bufsize".into(),
        format!("{}k", kbps * 2),
        // No B-frames, as in the top rung: with them the muxer shifts a segment that starts at
        // 0 to keep decode times positive, and it would overlap the next one.
        "-bf".into(),
        "0".into(),
        // One keyframe, the first frame: segments are whole GOPs in every rung.
        "-sc_threshold".into(),
        "0".into(),
        "-g".into(),
        "100000".into(),
    ]);
    args
}

/// The upscaled segment `index`: its path, its frame count, and where its video and audio start.
struct Upscaled {
    path: PathBuf,
    frames: u64,
    video_start: f64,
    audio_start: Option<f64>,
}

fn upscaled(tools: &Tools, dir: &JobDir, index: u32) -> Result<Upscaled, String> {
    let path = dir.segment(index);
    let frames = check::read_back(tools, &path)
        .map_err(|e| format!("{} cannot be read: {e}", file_name(&path)))?
        .video_packets;
    let (video_start, audio_start) = cmaf::stream_starts(tools, &path)?;
    Ok(Upscaled {
        path,
        frames,
        video_start,
        audio_start,
    })
}

/// Makes segment `index` of CMAF track `rung` from the upscaled segment of the same moment.
pub fn derive_cmaf_segment(
    tools: &Tools,
    dir: &JobDir,
    index: u32,
    rung: &str,
    target: &RungTarget,
) -> Result<(), String> {
    let top = upscaled(tools, dir, index)?;
    let out = dir.cmaf_segment(index, rung);
    let encoded = staging(&out).with_extension("mp4");
    let mut command = tools.ffmpeg_command();
    command.args(derive_cmaf_args(&top.path, &encoded, target));
    let made = process::output("ffmpeg", command)
        .map_err(|e| e.to_string())
        .and_then(|_| cmaf::piece(&encoded, top.video_start))
        .and_then(|piece| check_piece(tools, &piece, &out, top.frames).map(|()| piece));
    let _ = std::fs::remove_file(&encoded);
    made.and_then(|piece| store_pieces(dir, &[(rung, index, &piece)]))
        .map_err(|e| format!("{} came out damaged: {e}", file_name(&out)))
}

/// Repackages the upscaled segment `index` into the CMAF video track `top_name` and, when it
/// has sound, the audio track. Returns whether it had sound.
pub fn remux_top_segment(
    tools: &Tools,
    dir: &JobDir,
    index: u32,
    top_name: &str,
) -> Result<bool, String> {
    let top = upscaled(tools, dir, index)?;
    let out = dir.cmaf_segment(index, top_name);
    let video = staging(&out).with_extension("mp4");
    let audio = top
        .audio_start
        .map(|_| staging(&dir.cmaf_segment(index, AUDIO_TRACK)).with_extension("mp4"));
    let mut command = tools.ffmpeg_command();
    command.args(cmaf::remux_args(&top.path, &video, audio.as_deref()));
    let made = process::output("ffmpeg", command)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            let video_piece = cmaf::piece(&video, top.video_start)?;
            check_piece(tools, &video_piece, &out, top.frames)?;
            let audio_piece = match (&audio, top.audio_start) {
                (Some(path), Some(start)) => Some(cmaf::piece(path, start)?),
                _ => None,
            };
            Ok((video_piece, audio_piece))
        });
    for path in [Some(&video), audio.as_ref()].into_iter().flatten() {
        let _ = std::fs::remove_file(path);
    }
    let damaged = |e: String| format!("{} came out damaged: {e}", file_name(&out));
    let (video_piece, audio_piece) = made.map_err(damaged)?;
    // The sound first: a video segment on disk means its moment is whole in every track.
    let mut stored = Vec::new();
    if let Some(piece) = &audio_piece {
        stored.push((AUDIO_TRACK, index, piece));
    }
    stored.push((top_name, index, &video_piece));
    store_pieces(dir, &stored).map_err(damaged)?;
    Ok(audio_piece.is_some())
}

/// Played as init + media, the piece has the top segment's frames, a keyframe first.
fn check_piece(tools: &Tools, piece: &cmaf::Piece, out: &Path, frames: u64) -> Result<(), String> {
    let joined = staging(out).with_extension("check.mp4");
    let written = std::fs::write(
        &joined,
        [piece.init.as_slice(), piece.media.as_slice()].concat(),
    )
    .map_err(|e| format!("cannot write it: {e}"));
    let contents = written.and_then(|()| check::read_back(tools, &joined));
    let _ = std::fs::remove_file(&joined);
    whole(contents?, frames)
}

/// As many frames as the upscaled segment, a keyframe first.
fn whole(contents: check::Contents, frames: u64) -> Result<(), String> {
    if contents.video_packets != frames {
        return Err(format!(
            "it has {} frames where the upscaled segment has {frames}",
            contents.video_packets
        ));
    }
    if !contents.starts_with_keyframe {
        return Err("it does not start with a keyframe".into());
    }
    Ok(())
}

/// Writes each track's init segment (the first time) and media segment, whole or not at all.
fn store_pieces(dir: &JobDir, pieces: &[(&str, u32, &cmaf::Piece)]) -> Result<(), String> {
    for (track, index, piece) in pieces {
        let init = dir.cmaf_init(track);
        if !init.is_file() {
            cmaf::write_whole(&init, &piece.init)?;
        }
        cmaf::write_whole(&dir.cmaf_segment(*index, track), &piece.media)?;
    }
    Ok(())
}

/// Makes `out` from `top`; `Err` says why nothing was kept.
pub fn derive_segment(
    tools: &Tools,
    top: &Path,
    out: &Path,
    rung: &RungTarget,
) -> Result<(), String> {
    let expected = check::read_back(tools, top)
        .map_err(|e| format!("{} cannot be read: {e}", file_name(top)))?;
    let partial = staging(out);
    let mut command = tools.ffmpeg_command();
    command.args(derive_args(top, &partial, rung));
    let result = process::output("ffmpeg", command)
        .map_err(|e| e.to_string())
        .and_then(|_| check::read_back(tools, &partial))
        .and_then(|contents| whole(contents, expected.video_packets))
        .and_then(|()| {
            std::fs::rename(&partial, out).map_err(|e| format!("cannot rename it: {e}"))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map_err(|e| format!("{} came out damaged: {e}", file_name(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rung_is_scaled_encoded_at_its_bitrate_and_keeps_timestamps() {
        let rung = RungTarget {
            width: 854,
            height: 480,
            kbps: 1400,
        };
        let args: Vec<String> = derive_args(Path::new("/j/a.ts"), Path::new("/j/.b"), &rung)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.starts_with("-copyts -i /j/a.ts -map 0:a? -c:a copy "),
            "{joined}"
        );
        for part in [
            "scale=854:480:flags=bicubic",
            "-b:v 1400k",
            "-maxrate 2100k",
            "-bufsize 2800k",
            "-bf 0 -sc_threshold 0",
            "-f mpegts /j/.b",
        ] {
            assert!(joined.contains(part), "{part}: {joined}");
        }
        let cmaf: Vec<String> = derive_cmaf_args(Path::new("/j/a.ts"), Path::new("/j/.c"), &rung)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let cmaf = cmaf.join(" ");
        assert!(
            !cmaf.contains("0:a"),
            "the video track has no sound: {cmaf}"
        );
        assert!(
            cmaf.ends_with("-movflags +frag_keyframe+empty_moov+default_base_moof -f mp4 /j/.c"),
            "{cmaf}"
        );
    }

    #[test]
    fn a_segment_that_cannot_be_read_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("segment_00000.ts");
        std::fs::write(&top, b"not a video").unwrap();
        let out = dir.path().join("segment_00000.54p.ts");
        let rung = RungTarget {
            width: 96,
            height: 54,
            kbps: 100,
        };
        let error = derive_segment(&Tools::from_env(), &top, &out, &rung).unwrap_err();
        assert!(error.contains("segment_00000.ts cannot be read"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
