//! A lower rung's segment, made from the top rung's segment of the same moment: scaled and
//! encoded at the rung's bitrate with the timestamps kept, audio copied. Every rung's segment N
//! therefore starts at the same instant, on a keyframe, so a player may change rung at any
//! segment boundary; no frame is upscaled twice.
//!
//! The result is written under a dot name beside its final one, read back (as many frames as
//! the top segment, a keyframe first) and only then renamed: a rung segment that exists is whole.

use std::path::{Path, PathBuf};

use crate::media::{check, process, Tools};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RungTarget {
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
}

/// The ffmpeg arguments that make `out` from `top` (after `ffmpeg_command`'s own).
pub fn derive_args(top: &Path, out: &Path, rung: &RungTarget) -> Vec<std::ffi::OsString> {
    let kbps = rung.kbps;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(Into::into));
    push(&["-copyts", "-i"]);
    args.push(top.into());
    let mut push = |items: &[String]| args.extend(items.iter().map(Into::into));
    push(&[
        "-map".into(),
        "0:v:0".into(),
        "-map".into(),
        "0:a?".into(),
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
        "-c:a".into(),
        "copy".into(),
        "-muxdelay".into(),
        "0".into(),
        "-muxpreload".into(),
        "0".into(),
        "-f".into(),
        "mpegts".into(),
    ]);
    args.push(out.into());
    args
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
    let staging = staging_path(out);
    let mut command = tools.ffmpeg_command();
    command.args(derive_args(top, &staging, rung));
    let made = process::output("ffmpeg", command)
        .map_err(|e| e.to_string())
        .and_then(|_| check::read_back(tools, &staging));
    let result = match made {
        Ok(contents) if contents.video_packets != expected.video_packets => Err(format!(
            "it has {} frames where {} has {}",
            contents.video_packets,
            file_name(top),
            expected.video_packets
        )),
        Ok(contents) if !contents.starts_with_keyframe => {
            Err("it does not start with a keyframe".to_string())
        }
        Ok(_) => std::fs::rename(&staging, out).map_err(|e| format!("cannot rename it: {e}")),
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    result.map_err(|e| format!("{} came out damaged: {e}", file_name(out)))
}

fn staging_path(out: &Path) -> PathBuf {
    out.with_file_name(format!(".{}.partial", file_name(out)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
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
        assert!(joined.starts_with("-copyts -i /j/a.ts "), "{joined}");
        for part in [
            "scale=854:480:flags=bicubic",
            "-b:v 1400k",
            "-maxrate 2100k",
            "-bufsize 2800k",
            "-bf 0 -sc_threshold 0",
            "-c:a copy",
            "-f mpegts /j/.b",
        ] {
            assert!(joined.contains(part), "{part}: {joined}");
        }
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
