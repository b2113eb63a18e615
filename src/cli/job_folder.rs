//! What the operator commands read from a job's folder under `hls_root`: its `job.json` (read
//! loosely as JSON, so a field another version adds or drops never makes a folder unreadable),
//! its complete segments and its playlist.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::hls::MediaPlaylist;
use crate::job_dir::JobDir;

/// The playlists a folder may hold, best first: the one `liveup upscale` writes, then the one
/// the daemon's encoder keeps for itself.
const PLAYLISTS: [&str; 2] = ["stream.m3u8", "encoder.m3u8"];

pub struct JobFolder {
    pub dir: PathBuf,
    /// `job.json`, when the folder has a readable one (daemon jobs do; `liveup upscale` folders
    /// do not).
    pub record: Option<Value>,
}

impl JobFolder {
    pub fn read(dir: &Path) -> JobFolder {
        let record = std::fs::read(JobDir::at(dir).record())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .filter(Value::is_object);
        JobFolder {
            dir: dir.to_path_buf(),
            record,
        }
    }

    /// The job's `state` ("queued", "running", "complete", …), if it has a job.json.
    pub fn state(&self) -> Option<&str> {
        self.record.as_ref()?.get("state")?.as_str()
    }

    pub fn field_f64(&self, key: &str) -> Option<f64> {
        self.record.as_ref()?.get(key)?.as_f64()
    }

    pub fn flag(&self, key: &str) -> bool {
        self.record
            .as_ref()
            .and_then(|r| r.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The job this one streams for while its model cannot keep up (it writes no final file).
    pub fn stand_in_for(&self) -> Option<&str> {
        self.record.as_ref()?.get("stand_in_for")?.as_str()
    }

    /// The final file the job writes, as job.json names it.
    pub fn output(&self) -> Option<PathBuf> {
        let text = self.record.as_ref()?.get("output")?.as_str()?;
        Some(PathBuf::from(text))
    }

    pub fn segments(&self) -> Vec<u32> {
        JobDir::at(&self.dir)
            .segments_on_disk()
            .into_iter()
            .collect()
    }

    pub fn playlist(&self) -> Option<MediaPlaylist> {
        PLAYLISTS.iter().find_map(|name| {
            let text = std::fs::read_to_string(self.dir.join(name)).ok()?;
            MediaPlaylist::parse(&text).ok()
        })
    }

    /// When each complete segment was finished, by index.
    pub fn segment_times(&self) -> Vec<(u32, SystemTime)> {
        self.segments()
            .into_iter()
            .filter_map(|index| {
                let path = JobDir::at(&self.dir).segment(index);
                let modified = std::fs::metadata(path).ok()?.modified().ok()?;
                Some((index, modified))
            })
            .collect()
    }
}

/// `12.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1h 02m 03s`, `4m 05s`, `6s`.
pub fn human_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_duration(6.4), "6s");
        assert_eq!(human_duration(245.0), "4m 05s");
        assert_eq!(human_duration(3723.0), "1h 02m 03s");
    }

    #[test]
    fn a_folder_without_job_json_has_no_record() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("job.json"), "not json").unwrap();
        let folder = JobFolder::read(dir.path());
        assert!(folder.record.is_none());
        assert!(folder.state().is_none());
        assert!(folder.segments().is_empty());
    }
}
