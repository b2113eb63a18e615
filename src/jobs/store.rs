//! Where jobs are kept. [`FileStore`]: each job's `<hls_root>/<job>/job.json` alone, for one host
//! with no database. [`super::shared::SharedStore`]: PostgreSQL as well, for several hosts working
//! one library (see there). Either way job.json is written, always whole (temp file + fsync +
//! rename), so a daemon killed at any moment restarts with every job as it last was, and the
//! operator commands read the same folders.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::shared::SharedStore;
use super::JobRecord;

use crate::job_dir::{JobDir, JOB_FILE};

pub trait JobStore: Send + Sync {
    /// Records a new job. `Ok(Some(existing))` when the job exists already and is not this
    /// record's to replace (another host created it, or holds it).
    fn create(&self, record: &JobRecord) -> io::Result<Option<JobRecord>>;

    /// Records a change of a job (its rungs aside, with several hosts: see `save_rungs`).
    fn save(&self, record: &JobRecord) -> io::Result<()>;

    /// Records a change of a job's lower rungs (`variants`, `variant_lock`), which whichever host
    /// makes them owns, whoever runs the job.
    fn save_rungs(&self, record: &JobRecord) -> io::Result<()> {
        self.save(record)
    }

    /// Every job; unreadable ones are skipped (logged).
    fn load_all(&self) -> Vec<JobRecord>;

    /// The queue the hosts share, when there are several; `None`: this host's own queue decides.
    fn shared(&self) -> Option<&SharedStore> {
        None
    }
}

pub struct FileStore {
    hls_root: PathBuf,
}

impl FileStore {
    pub fn new(hls_root: &Path) -> FileStore {
        FileStore {
            hls_root: hls_root.to_path_buf(),
        }
    }
}

impl JobStore for FileStore {
    fn create(&self, record: &JobRecord) -> io::Result<Option<JobRecord>> {
        write_job_file(&self.hls_root, record).map(|()| None)
    }

    fn save(&self, record: &JobRecord) -> io::Result<()> {
        write_job_file(&self.hls_root, record)
    }

    fn load_all(&self) -> Vec<JobRecord> {
        read_job_files(&self.hls_root)
    }
}

pub fn write_job_file(hls_root: &Path, record: &JobRecord) -> io::Result<()> {
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
fn read_job_files(hls_root: &Path) -> Vec<JobRecord> {
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
