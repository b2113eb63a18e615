//! A job's folder under `hls_root`, and every name in it:
//! - `segment_00042.ts`: the film's segments by index, each checked whole before it gets its name;
//! - `segment_00042.480p.ts`: the same moment in a lower rung, made from `segment_00042.ts`;
//! - `segment_00042.480p.m4s`, `segment_00042.audio.m4s`, `init.480p.mp4`, `init.audio.mp4`: the
//!   ladder as CMAF, one track per file (the upscaled rung's video repackaged, lower rungs encoded,
//!   the audio once);
//! - `job.json`: the job's state ([`crate::jobs::store`]);
//! - `encoder.m3u8`: the playlist of the current run's segments;
//! - `.incoming/`: where the encoder writes before a segment is checked; never served;
//! - `preview.png`: one frame of the source beside the same frame upscaled.
//!
//! The final file lives under `output_root`; while it is written it is `<final>.partial`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const JOB_FILE: &str = "job.json";
pub const RUN_PLAYLIST: &str = "encoder.m3u8";
/// A dot name: nginx and the daemon serve no dot files.
pub const STAGING: &str = ".incoming";
pub const PREVIEW_FILE: &str = "preview.png";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir(PathBuf);

impl JobDir {
    pub fn new(hls_root: &Path, id: &str) -> JobDir {
        JobDir(hls_root.join(id))
    }

    /// A folder laid out like a job's (`liveup upscale`'s HLS folder is one).
    pub fn at(path: impl Into<PathBuf>) -> JobDir {
        JobDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn segment(&self, index: u32) -> PathBuf {
        self.0.join(segment_name(index))
    }

    pub fn record(&self) -> PathBuf {
        self.0.join(JOB_FILE)
    }

    pub fn staging(&self) -> PathBuf {
        self.0.join(STAGING)
    }

    pub fn preview(&self) -> PathBuf {
        self.0.join(PREVIEW_FILE)
    }

    pub fn rung_segment(&self, index: u32, rung: &str) -> PathBuf {
        self.0.join(rung_segment_name(index, rung))
    }

    /// The MPEG-TS segments of every lower rung in the folder, by rung name (listed once per
    /// job).
    pub fn rung_segments_on_disk(&self) -> BTreeMap<String, BTreeSet<u32>> {
        self.tracks_on_disk(rung_segment_index)
    }

    pub fn cmaf_segment(&self, index: u32, track: &str) -> PathBuf {
        self.0.join(cmaf_segment_name(index, track))
    }

    pub fn cmaf_init(&self, track: &str) -> PathBuf {
        self.0.join(cmaf_init_name(track))
    }

    /// The CMAF segments in the folder, by track (a rung's name, or `audio`).
    pub fn cmaf_segments_on_disk(&self) -> BTreeMap<String, BTreeSet<u32>> {
        self.tracks_on_disk(cmaf_segment_index)
    }

    fn tracks_on_disk(
        &self,
        parse: fn(&str) -> Option<(u32, String)>,
    ) -> BTreeMap<String, BTreeSet<u32>> {
        let mut tracks = BTreeMap::<String, BTreeSet<u32>>::new();
        for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if let Some((index, track)) = entry.file_name().to_str().and_then(parse) {
                tracks.entry(track).or_default().insert(index);
            }
        }
        tracks
    }

    /// The segments in the folder. This lists it: the daemon does so once per job at start and
    /// keeps the set in memory after.
    pub fn segments_on_disk(&self) -> BTreeSet<u32> {
        std::fs::read_dir(&self.0)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| segment_index(e.file_name().to_str()?))
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn segment_name(index: u32) -> String {
    format!("segment_{index:05}.ts")
}

/// `segment_00042.ts` → 42 (digits only, at least one).
pub fn segment_index(name: &str) -> Option<u32> {
    index_of(name.strip_suffix(".ts")?)
}

/// `segment_00042` → 42 (digits only, at least one).
fn index_of(stem: &str) -> Option<u32> {
    let digits = stem.strip_prefix("segment_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `segment_00042.<track><extension>` → (42, track), for a track `accept` takes.
fn track_segment_index(
    name: &str,
    extension: &str,
    accept: fn(&str) -> bool,
) -> Option<(u32, String)> {
    let (stem, track) = name.strip_suffix(extension)?.split_once('.')?;
    accept(track).then_some(())?;
    Some((index_of(stem)?, track.to_string()))
}

pub fn rung_segment_name(index: u32, rung: &str) -> String {
    format!("segment_{index:05}.{rung}.ts")
}

/// `segment_00042.480p.ts` → (42, "480p").
pub fn rung_segment_index(name: &str) -> Option<(u32, String)> {
    track_segment_index(name, ".ts", |rung| crate::ladder::height_of(rung).is_some())
}

/// The CMAF track holding the sound.
pub const AUDIO_TRACK: &str = "audio";

pub fn cmaf_segment_name(index: u32, track: &str) -> String {
    format!("segment_{index:05}.{track}.m4s")
}

pub fn cmaf_init_name(track: &str) -> String {
    format!("init.{track}.mp4")
}

/// A rung's name or `audio`.
pub fn is_track(name: &str) -> bool {
    name == AUDIO_TRACK || crate::ladder::height_of(name).is_some()
}

/// `segment_00042.480p.m4s` → (42, "480p"); `segment_00042.audio.m4s` → (42, "audio").
pub fn cmaf_segment_index(name: &str) -> Option<(u32, String)> {
    track_segment_index(name, ".m4s", is_track)
}

/// Where the final file `output` is written until it is whole.
pub fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_and_indices_round_trip() {
        assert_eq!(segment_name(42), "segment_00042.ts");
        assert_eq!(segment_index("segment_00042.ts"), Some(42));
        assert_eq!(segment_index(&segment_name(123_456)), Some(123_456));
        for name in [
            "segment_.ts",
            "segment_1a.ts",
            "segment_-1.ts",
            "stream.m3u8",
            "segment_00001.ts.tmp",
        ] {
            assert_eq!(segment_index(name), None, "{name}");
        }
    }

    #[test]
    fn rung_segments_are_named_apart_from_the_top_ones() {
        assert_eq!(rung_segment_name(42, "480p"), "segment_00042.480p.ts");
        assert_eq!(
            rung_segment_index("segment_00042.480p.ts"),
            Some((42, "480p".to_string()))
        );
        assert_eq!(segment_index("segment_00042.480p.ts"), None);
        for name in [
            "segment_00042.ts",
            "segment_00042.x.ts",
            "segment_x.480p.ts",
        ] {
            assert_eq!(rung_segment_index(name), None, "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "segment_00000.ts",
            "segment_00000.54p.ts",
            "segment_00003.54p.ts",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let job = JobDir::at(dir.path());
        assert_eq!(job.segments_on_disk(), BTreeSet::from([0]));
        assert_eq!(job.rung_segments_on_disk()["54p"], BTreeSet::from([0, 3]));
    }

    #[test]
    fn cmaf_names_say_their_track() {
        assert_eq!(cmaf_segment_name(7, "480p"), "segment_00007.480p.m4s");
        assert_eq!(cmaf_init_name("audio"), "init.audio.mp4");
        assert_eq!(
            cmaf_segment_index("segment_00007.audio.m4s"),
            Some((7, "audio".to_string()))
        );
        assert_eq!(
            cmaf_segment_index("segment_00007.480p.m4s"),
            Some((7, "480p".to_string()))
        );
        for name in [
            "segment_00007.ts",
            "segment_00007.x.m4s",
            "segment_00007.480p.ts",
        ] {
            assert_eq!(cmaf_segment_index(name), None, "{name}");
        }
    }

    #[test]
    fn only_segments_count_as_made() {
        let dir = tempfile::tempdir().unwrap();
        let job = JobDir::at(dir.path());
        for name in [
            "segment_00000.ts",
            "segment_00002.ts",
            "job.json",
            "segment_00001.ts.tmp",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(job.staging()).unwrap();
        std::fs::write(job.staging().join("segment_00003.ts"), b"x").unwrap();
        assert_eq!(job.segments_on_disk(), BTreeSet::from([0, 2]));
        assert_eq!(
            partial_path(Path::new("/out/a.ts")),
            Path::new("/out/a.ts.partial")
        );
    }
}
