//! The reliability suite: the real daemon and real ffmpeg against hostile requests, a full disk,
//! killed processes and damaged sources. Every case ends by decoding whatever the job left as its
//! final file (`ffmpeg -v error -i FILE -f null -` must print nothing).

#[path = "../common/mod.rs"]
mod common;

mod access;
mod disk;
mod failed_jobs;
mod failures;
mod rungs;
mod seams;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::decode_errors;
use liveup::job_dir::JobDir;
use liveup::media::{check, Tools};

/// A small tmpfs of its own, unmounted when dropped: a disk that really fills up.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (and a loud line on stderr) where this machine does not let the tests mount one;
    /// a failure instead when `NO_SKIPPED_TESTS` is set (`scripts/test`, hence CI, sets it).
    pub fn mount(kib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs {
                path: dir.path().to_path_buf(),
                _dir: dir,
            }),
            Ok(out) => skip(&format!(
                "cannot mount a tmpfs to fill up (needs root or CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => skip(&format!("cannot run mount to make a tmpfs to fill up: {e}")),
        }
    }

    pub fn resize(&self, kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn free(&self) -> u64 {
        liveup::disk::free_bytes(&self.path).unwrap()
    }

    /// Fills the file system until only `leave` bytes are free.
    pub fn fill_leaving(&self, leave: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let size = self.free().saturating_sub(leave) as usize;
        std::fs::write(&filler, vec![0u8; size]).unwrap();
        filler
    }
}

fn skip(reason: &str) -> Option<Tmpfs> {
    assert!(
        std::env::var_os("NO_SKIPPED_TESTS").is_none(),
        "NO_SKIPPED_TESTS is set and {reason}"
    );
    eprintln!("SKIPPED: {reason}");
    None
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

pub fn job_id(reply: &serde_json::Value) -> String {
    reply["job_id"].as_str().unwrap().to_string()
}

/// The job will do nothing more by itself.
pub fn settled(job: &serde_json::Value) -> bool {
    job["state"] != "queued" && job["state"] != "running"
}

/// Whatever the job left as its final file decodes without one complaint.
pub fn assert_final_decodes(job: &serde_json::Value) {
    let output = Path::new(job["output"].as_str().unwrap());
    if output.exists() {
        let errors = decode_errors(output);
        assert!(errors.is_empty(), "{}: {errors}", output.display());
    }
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    assert!(
        !Path::new(&partial).exists(),
        "a partial final file is left"
    );
}

/// Every segment under its final name reads back whole and decodes cleanly, and nothing is left
/// in the encoder's staging folder.
pub fn assert_segments_whole(job_dir: &Path) {
    let tools = Tools::from_env();
    for index in JobDir::at(job_dir).segments_on_disk() {
        let path = job_dir.join(liveup::job_dir::segment_name(index));
        let contents = check::read_back(&tools, &path)
            .unwrap_or_else(|e| panic!("{} is broken: {e}", path.display()));
        assert!(contents.video_packets > 0 && contents.starts_with_keyframe);
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "{}: {errors}", path.display());
    }
    let staging = job_dir.join(liveup::job_dir::STAGING);
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in staging: {left:?}");
}
