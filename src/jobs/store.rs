//! `<hls_root>/<job>/job.json`: a job's state on disk, always whole (temp file + fsync + rename),
//! so a daemon killed at any moment restarts with every job as it last was.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::JobRecord;

use crate::job_dir::{JobDir, JOB_FILE};

pub fn save(hls_root: &Path, record: &JobRecord) -> io::Result<()> {
    let dir = JobDir::new(hls_root, &record.id);
    fs::create_dir_all(dir.path())?;
    let temp = dir.path().join(format!("{JOB_FILE}.tmp"));
    let mut file = File::create(&temp)?;
    file.write_all(&serde_json::to_vec_pretty(record).map_err(io::Error::other)?)?;
    file.sync_all()?;
    fs::rename(&temp, dir.record())?;
    File::open(dir.path())?.sync_all()
}

/// Every job found under `hls_root`; folders without a readable job.json are skipped (logged).
pub fn load_all(hls_root: &Path) -> Vec<JobRecord> {
    let Ok(entries) = fs::read_dir(hls_root) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for entry in entries.flatten() {
        let path = JobDir::at(entry.path()).record();
        if !path.is_file() {
            continue;
        }
        match fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<JobRecord>(&bytes).map_err(|e| e.to_string())
            }) {
            Ok(record) => records.push(record),
            Err(error) => tracing::warn!("skipping {}: {error}", path.display()),
        }
    }
    records
}
