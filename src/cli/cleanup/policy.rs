//! Which HLS folders may go: a completed job's once its final file exists, and an abandoned
//! one (failed, cancelled, stopped, or a folder without a job) once nothing in it has changed
//! for `max_age`. Queued and running jobs, and jobs the daemon says are busy, always stay.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::remove::{self, Protected};
use crate::cli::job_folder::JobFolder;

#[derive(Debug, Clone)]
pub struct Policy {
    pub max_age: Duration,
    pub completed_only: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Removed,
    WouldRemove,
    Kept,
    /// Chosen for removal, but a safety check or the filesystem refused.
    Refused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub action: Action,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub entries: Vec<Entry>,
    /// Freed, or that would be freed in a dry run.
    pub freed_bytes: u64,
    pub dry_run: bool,
}

/// Applies `policy` to every folder directly inside `hls_root`. `busy` names jobs (folder
/// names) a running daemon is working on or serving, which are kept whatever their files say.
pub fn sweep(
    hls_root: &Path,
    output_root: &Path,
    policy: &Policy,
    busy: &HashSet<String>,
) -> Result<Report, String> {
    let canonical = |path: &Path, key: &str| {
        path.canonicalize()
            .map_err(|e| format!("cannot resolve {key} {}: {e}", path.display()))
    };
    let hls_root = canonical(hls_root, "hls_root")?;
    if hls_root.parent().is_none() {
        return Err("refusing to clean up: hls_root is the root folder /".into());
    }
    let mut names: Vec<String> = std::fs::read_dir(&hls_root)
        .map_err(|e| format!("cannot list {}: {e}", hls_root.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let protected = Protected {
        output_root: canonical(output_root, "output_root")?,
        finals: final_files(&hls_root, &names),
        hls_root,
    };
    let mut report = Report {
        dry_run: policy.dry_run,
        ..Report::default()
    };
    for name in names {
        let path = protected.hls_root.join(&name);
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !metadata.is_dir() && !metadata.file_type().is_symlink() {
            continue;
        }
        let mut entry = Entry {
            bytes: remove::tree_facts(&path).map_or(0, |(bytes, _)| bytes),
            name,
            path,
            action: Action::Kept,
            reason: String::new(),
        };
        let verdict = if metadata.file_type().is_symlink() {
            Err("a symbolic link: never followed".to_string())
        } else if busy.contains(&entry.name) {
            Err("in use by the daemon".to_string())
        } else {
            decide(&entry.path, policy)
        };
        match verdict {
            Err(why) => entry.reason = why,
            Ok(why) => {
                entry.reason = why;
                apply(&mut entry, policy, &protected);
                if entry.action != Action::Kept && entry.action != Action::Refused {
                    report.freed_bytes += entry.bytes;
                }
            }
        }
        report.entries.push(entry);
    }
    Ok(report)
}

/// Removes (or, in a dry run, checks) one folder chosen by [`decide`], deciding again first:
/// a job may have been picked up since the folder was listed.
fn apply(entry: &mut Entry, policy: &Policy, protected: &Protected) {
    let outcome = match decide(&entry.path, policy) {
        Err(why) => {
            entry.reason = why;
            return;
        }
        Ok(_) if policy.dry_run => remove::check(&entry.path, protected).map(|()| entry.bytes),
        Ok(_) => remove::remove(&entry.path, protected),
    };
    match outcome {
        Ok(bytes) => {
            entry.bytes = bytes;
            entry.action = if policy.dry_run {
                Action::WouldRemove
            } else {
                Action::Removed
            };
        }
        Err(why) => {
            entry.action = Action::Refused;
            entry.reason = format!("{}; refused: {why}", entry.reason);
        }
    }
}

/// `Ok(why it may go)` or `Err(why it stays)`, from the folder's own files.
fn decide(dir: &Path, policy: &Policy) -> Result<String, String> {
    let folder = JobFolder::read(dir);
    let state = folder.state().map(str::to_string);
    let active = matches!(state.as_deref(), Some("queued" | "running"));
    if let Some(film) = folder.stand_in_for().filter(|_| !active) {
        return Ok(format!(
            "the live stream that stood in for job {film}; it has no final file"
        ));
    }
    match state.as_deref() {
        Some(active @ ("queued" | "running")) => return Err(format!("{active} job")),
        Some("complete") => {
            let output = folder.output();
            return match output {
                Some(output) if output.is_file() => {
                    Ok(format!("complete; final file {} exists", output.display()))
                }
                Some(output) => Err(format!(
                    "complete, but its final file {} is missing: these segments are the only copy",
                    output.display()
                )),
                None => Err("complete, but job.json names no final file".to_string()),
            };
        }
        _ => {}
    }
    let what = state.map_or_else(|| "no job.json".to_string(), |s| format!("{s} job"));
    if policy.completed_only {
        return Err(format!("{what}; --completed-only"));
    }
    let (_, newest) = remove::tree_facts(dir).map_err(|e| format!("unreadable: {e}"))?;
    let age = SystemTime::now()
        .duration_since(newest)
        .unwrap_or(Duration::ZERO);
    let hours = |d: Duration| d.as_secs_f64() / 3600.0;
    if age >= policy.max_age {
        Ok(format!(
            "abandoned ({what}), unchanged for {:.1} h",
            hours(age)
        ))
    } else {
        Err(format!(
            "{what}, changed {:.1} h ago (max-age {:.1} h)",
            hours(age),
            hours(policy.max_age)
        ))
    }
}

/// Every final file a job under `hls_root` names, resolved where it exists, so that no folder
/// holding one is ever removed.
fn final_files(hls_root: &Path, names: &[String]) -> HashSet<PathBuf> {
    names
        .iter()
        .filter_map(|name| JobFolder::read(&hls_root.join(name)).output())
        .flat_map(|output| {
            let resolved = output.canonicalize().ok();
            [Some(output), resolved]
        })
        .flatten()
        .collect()
}
