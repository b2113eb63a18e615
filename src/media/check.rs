//! Is a file ffmpeg wrote whole? ffmpeg's muxers keep going, and exit 0, after their writes
//! fail (a full disk leaves segments truncated or empty under their final names), so every
//! segment is read back with ffprobe before it counts.

use std::path::Path;
use std::process::Command;

use super::process::Process;
use super::Tools;

/// What reading a file back found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub video_packets: u64,
    pub starts_with_keyframe: bool,
}

/// Demuxes `path` (no decoding: cheap) and counts its video packets. Anything ffprobe complains
/// about, an empty file, or a file that does not parse is an error that says what was wrong.
pub fn read_back(tools: &Tools, path: &Path) -> Result<Contents, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if size == 0 {
        return Err("it is empty".into());
    }
    let mut command = Command::new(&tools.ffprobe);
    command
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(path);
    let mut spawned = Process::spawn("ffprobe", command, false, true).map_err(|e| e.to_string())?;
    let mut listing = String::new();
    if let Some(mut stdout) = spawned.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut listing);
    }
    spawned
        .process
        .wait()
        .map_err(|e| format!("it does not parse: {e}"))?;
    let complaints = spawned.process.stderr_tail();
    if !complaints.is_empty() {
        return Err(format!("ffprobe reports: {complaints}"));
    }
    let flags: Vec<&str> = listing.lines().filter(|l| !l.trim().is_empty()).collect();
    Ok(Contents {
        video_packets: flags.len() as u64,
        starts_with_keyframe: flags.first().is_some_and(|f| f.contains('K')),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(path: &Path, extra: &[&str]) {
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=64x36:rate=10:duration=1")
            .args(["-c:v", "libx264", "-g", "10"])
            .args(extra)
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_whole_segment_reads_back_with_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whole.ts");
        clip(&path, &[]);
        let contents = read_back(&Tools::from_env(), &path).unwrap();
        assert_eq!(contents.video_packets, 10);
        assert!(contents.starts_with_keyframe);
    }

    #[test]
    fn empty_truncated_and_foreign_files_are_refused_or_come_up_short() {
        let dir = tempfile::tempdir().unwrap();
        let tools = Tools::from_env();
        let empty = dir.path().join("empty.ts");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(read_back(&tools, &empty).unwrap_err(), "it is empty");
        let text = dir.path().join("text.ts");
        std::fs::write(&text, b"not a transport stream at all\n").unwrap();
        assert!(read_back(&tools, &text).is_err());
        let whole = dir.path().join("whole.ts");
        clip(&whole, &[]);
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.path().join("cut.ts");
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        if let Ok(contents) = read_back(&tools, &cut) {
            assert!(contents.video_packets < 10, "{contents:?}");
        }
    }
}
