//! CMAF: the upscaled film's segments repackaged, and lower rungs encoded, as fragmented MP4 with
//! one track per file (video per rung, audio once), so HLS and DASH play the same files.
//!
//! ffmpeg writes each piece as a small fragmented MP4 (`ftyp moov` then `moof mdat`); it is split
//! here into the track's init segment and the media segment, and the media segment's decode time
//! (`tfdt`) is set to where the piece belongs in the film: ffmpeg's mp4 muxer starts every file's
//! fragments at zero whatever the input's timestamps were.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::media::{process, Tools};

/// The flags that make ffmpeg's mp4 muxer write fragments CMAF players accept.
const FRAGMENTED: &str = "+frag_keyframe+empty_moov+default_base_moof";
/// Video tracks count time in 90 kHz ticks, as MPEG-TS does, so every rung shares one clock.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// A track's init segment and one media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub init: Vec<u8>,
    pub media: Vec<u8>,
}

/// The ffmpeg outputs of one top segment repackaged: its video (copied) to `video`, and its
/// audio (copied) to `audio` when there is one.
pub fn remux_args(top: &Path, video: &Path, audio: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-copyts".into(), "-i".into(), top.into()];
    let fragmented = |args: &mut Vec<OsString>| {
        args.extend(["-movflags", FRAGMENTED, "-f", "mp4"].map(OsString::from));
    };
    args.extend(["-map", "0:v:0", "-c", "copy"].map(OsString::from));
    args.extend(["-video_track_timescale", "90000"].map(OsString::from));
    fragmented(&mut args);
    args.push(video.into());
    if let Some(audio) = audio {
        args.extend(["-map", "0:a:0", "-c", "copy", "-bsf:a", "aac_adtstoasc"].map(OsString::from));
        fragmented(&mut args);
        args.push(audio.into());
    }
    args
}

/// The mp4 muxer's part of a lower rung's encode (after the encoder's own arguments).
pub fn fragmented_output(out: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-video_track_timescale", "90000", "-movflags", FRAGMENTED]
        .map(OsString::from)
        .to_vec();
    args.extend(["-f", "mp4"].map(OsString::from));
    args.push(out.into());
    args
}

/// Where each stream of an MPEG-TS segment starts: (has audio, video start, audio start), in
/// seconds.
pub fn stream_starts(tools: &Tools, segment: &Path) -> Result<(f64, Option<f64>), String> {
    let mut command = std::process::Command::new(&tools.ffprobe);
    command
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,start_time",
        ])
        .args(["-of", "json"])
        .arg(segment);
    let out = process::output("ffprobe", command).map_err(|e| e.to_string())?;
    let probed: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| format!("ffprobe's answer: {e}"))?;
    let start = |kind: &str| {
        probed["streams"]
            .as_array()?
            .iter()
            .find(|s| s["codec_type"] == kind)?["start_time"]
            .as_str()?
            .parse::<f64>()
            .ok()
    };
    let video = start("video").ok_or("it has no video stream")?;
    Ok((video, start("audio")))
}

/// Reads back what ffmpeg wrote to `file`, as the track's init segment and a media segment
/// whose first decode time is `start` seconds.
pub fn piece(file: &Path, start: f64) -> Result<Piece, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read it: {e}"))?;
    let mut piece = split(&bytes)?;
    let timescale = timescale(&piece.init).ok_or("its init segment names no timescale")?;
    let ticks = (start * f64::from(timescale)).round().max(0.0) as u64;
    set_decode_time(&mut piece.media, ticks)?;
    Ok(piece)
}

/// `ftyp moov` | `moof mdat …`; anything after the fragments (`mfra`) is dropped.
pub fn split(bytes: &[u8]) -> Result<Piece, String> {
    let boxes = top_level(bytes)?;
    let first_fragment = boxes
        .iter()
        .position(|(kind, _)| kind == b"moof")
        .ok_or("it holds no fragment")?;
    if !boxes[..first_fragment]
        .iter()
        .any(|(kind, _)| kind == b"moov")
    {
        return Err("it has no moov before its fragments".into());
    }
    let init_end = boxes[first_fragment].1.start;
    let media_end = boxes[first_fragment..]
        .iter()
        .take_while(|(kind, _)| kind == b"moof" || kind == b"mdat")
        .last()
        .map_or(init_end, |(_, range)| range.end);
    if !boxes[first_fragment..]
        .iter()
        .any(|(kind, _)| kind == b"mdat")
    {
        return Err("its fragment has no media data".into());
    }
    Ok(Piece {
        init: bytes[..init_end].to_vec(),
        media: bytes[init_end..media_end].to_vec(),
    })
}

type Boxes = Vec<([u8; 4], std::ops::Range<usize>)>;

fn top_level(bytes: &[u8]) -> Result<Boxes, String> {
    children(bytes, 0..bytes.len())
}

fn children(bytes: &[u8], within: std::ops::Range<usize>) -> Result<Boxes, String> {
    let mut boxes = Vec::new();
    let mut at = within.start;
    while at < within.end {
        let header = bytes
            .get(at..at + 8)
            .ok_or("a box is cut short (a truncated file?)")?;
        let mut size = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = header[4..8].try_into().unwrap();
        if size == 1 {
            let large = bytes.get(at + 8..at + 16).ok_or("a box is cut short")?;
            size = u64::from_be_bytes(large.try_into().unwrap()) as usize;
        } else if size == 0 {
            size = within.end - at;
        }
        if size < 8 || at + size > within.end {
            return Err(format!(
                "box {} at byte {at} runs past its parent (a truncated file?)",
                String::from_utf8_lossy(&kind)
            ));
        }
        boxes.push((kind, at..at + size));
        at += size;
    }
    Ok(boxes)
}

fn find(
    bytes: &[u8],
    within: std::ops::Range<usize>,
    path: &[&[u8; 4]],
) -> Option<std::ops::Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (_, range) = children(bytes, within)
        .ok()?
        .into_iter()
        .find(|(kind, _)| kind == *first)?;
    if rest.is_empty() {
        return Some(range);
    }
    find(bytes, range.start + 8..range.end, rest)
}

/// The track's timescale, from `moov/trak/mdia/mdhd`.
pub fn timescale(init: &[u8]) -> Option<u32> {
    let mdhd = find(init, 0..init.len(), &[b"moov", b"trak", b"mdia", b"mdhd"])?;
    let version = *init.get(mdhd.start + 8)?;
    let at = mdhd.start + if version == 1 { 28 } else { 20 };
    Some(u32::from_be_bytes(init.get(at..at + 4)?.try_into().ok()?))
}

/// Moves every fragment of `media` so that the first one starts at `ticks`.
pub fn set_decode_time(media: &mut [u8], ticks: u64) -> Result<(), String> {
    let mut tfdts = Vec::new();
    for (kind, range) in top_level(media)? {
        if &kind != b"moof" {
            continue;
        }
        for (kind, traf) in children(media, range.start + 8..range.end)? {
            if &kind == b"traf" {
                let tfdt = find(media, traf.start + 8..traf.end, &[b"tfdt"])
                    .ok_or("a fragment has no decode time (tfdt)")?;
                tfdts.push(tfdt);
            }
        }
    }
    let read = |media: &[u8], tfdt: &std::ops::Range<usize>| -> u64 {
        if media[tfdt.start + 8] == 1 {
            u64::from_be_bytes(media[tfdt.start + 12..tfdt.start + 20].try_into().unwrap())
        } else {
            u64::from(u32::from_be_bytes(
                media[tfdt.start + 12..tfdt.start + 16].try_into().unwrap(),
            ))
        }
    };
    let first = tfdts.first().ok_or("no fragment to place")?;
    let shift = ticks as i128 - read(media, first) as i128;
    for tfdt in &tfdts {
        let moved = u64::try_from(read(media, tfdt) as i128 + shift)
            .map_err(|_| "a decode time would be negative")?;
        if media[tfdt.start + 8] == 1 {
            media[tfdt.start + 12..tfdt.start + 20].copy_from_slice(&moved.to_be_bytes());
        } else {
            let small =
                u32::try_from(moved).map_err(|_| "a decode time does not fit its 32-bit field")?;
            media[tfdt.start + 12..tfdt.start + 16].copy_from_slice(&small.to_be_bytes());
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all (a dot name beside it, then a rename).
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let staging = staging(path);
    let written = std::fs::write(&staging, bytes).and_then(|()| std::fs::rename(&staging, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&staging);
        format!("cannot write {}: {e}", file_name(path))
    })
}

pub fn staging(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{}.partial", file_name(path)))
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn ts_segment(dir: &Path, offset: f64) -> PathBuf {
        let path = dir.join("top.ts");
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=64x36:rate=10:duration=1")
            .args(["-f", "lavfi", "-i", "sine=duration=1"])
            .args(["-c:v", "libx264", "-bf", "0", "-c:a", "aac"])
            .args(["-output_ts_offset", &offset.to_string(), "-muxdelay", "0"])
            .args(["-muxpreload", "0", "-f", "mpegts"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    #[test]
    fn a_ts_segment_becomes_video_and_audio_pieces_at_its_place_in_the_film() {
        let dir = tempfile::tempdir().unwrap();
        let tools = Tools::from_env();
        let top = ts_segment(dir.path(), 42.0);
        let (video_start, audio_start) = stream_starts(&tools, &top).unwrap();
        assert!((video_start - 42.0).abs() < 0.01, "{video_start}");
        let audio_start = audio_start.unwrap();
        let (video, audio) = (dir.path().join("v.mp4"), dir.path().join("a.mp4"));
        let mut command = tools.ffmpeg_command();
        command.args(remux_args(&top, &video, Some(&audio)));
        process::output("ffmpeg", command).unwrap();

        let v = piece(&video, video_start).unwrap();
        assert_eq!(timescale(&v.init), Some(VIDEO_TIMESCALE));
        assert_eq!(&v.media[4..8], b"moof");
        let a = piece(&audio, audio_start).unwrap();
        assert_eq!(timescale(&a.init), Some(44_100));
        // Played from their files, init + media, the pieces start where the segment did.
        for (p, want, name) in [(&v, video_start, "v"), (&a, audio_start, "a")] {
            let joined = dir.path().join(format!("{name}.joined.mp4"));
            std::fs::write(&joined, [p.init.as_slice(), p.media.as_slice()].concat()).unwrap();
            let mut probe = Command::new("ffprobe");
            probe
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "packet=pts_time",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&joined);
            let out = String::from_utf8(probe.output().unwrap().stdout).unwrap();
            let first: f64 = out
                .lines()
                .next()
                .unwrap()
                .trim_end_matches(',')
                .parse()
                .unwrap();
            assert!((first - want).abs() < 0.01, "{name}: {first} vs {want}");
        }
    }

    #[test]
    fn broken_files_are_refused() {
        assert!(split(b"").unwrap_err().contains("no fragment"));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&16u32.to_be_bytes());
        bytes.extend_from_slice(b"moof");
        bytes.extend_from_slice(&[0; 4]);
        assert!(split(&bytes).unwrap_err().contains("runs past"));
    }
}
