//! `liveup monitor`: a job's progress, refreshed in place until it ends. It reads a job folder
//! directly (no daemon needed) or asks a running daemon's API (`--server`).

mod render;
pub mod status;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::job_folder::JobFolder;
use super::MonitorArgs;
use crate::config::Config;
use crate::media::{self, Tools};
use status::Status;

/// Where readings come from.
enum Target {
    Folder(PathBuf),
    /// The daemon at `url`; `job` None picks its running (else newest) job.
    Daemon {
        url: String,
        job: Option<String>,
        token: Option<String>,
    },
}

pub fn run(args: MonitorArgs) -> anyhow::Result<()> {
    let target = target(&args)?;
    let source_seconds = match &args.input_file {
        Some(file) => Some(
            media::probe(&Tools::from_env(), file)
                .with_context(|| format!("--input-file {}", file.display()))?
                .duration_seconds,
        ),
        None => None,
    };
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let mut stdout = std::io::stdout();
    loop {
        let mut reading = read(&target)?;
        if let Some(seconds) = source_seconds {
            reading = reading.with_source_duration(seconds);
        }
        if args.json {
            writeln!(stdout, "{}", serde_json::to_string(&reading)?)?;
        } else if terminal {
            // Redraw the one line in place.
            write!(stdout, "\r\x1b[2K{}", render::line(&reading))?;
        } else {
            writeln!(stdout, "{}", render::line(&reading))?;
        }
        stdout.flush()?;
        if args.once || reading.is_final() {
            if terminal {
                writeln!(stdout)?;
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval.max(0.1)));
    }
}

fn target(args: &MonitorArgs) -> anyhow::Result<Target> {
    let given = args.target.as_deref();
    let needs_config = args.config.is_some()
        || args.server.is_some()
        || given.is_none_or(|t| !Path::new(t).is_dir());
    // Loaded only when needed: a folder alone must not need (or create) liveup's data folders.
    let config = if needs_config {
        Some(Config::load(args.config.as_deref())?)
    } else {
        None
    };
    if let Some(url) = &args.server {
        let job = given.map(|t| {
            let path = Path::new(t);
            match (path.is_dir(), path.file_name()) {
                (true, Some(name)) => name.to_string_lossy().into_owned(),
                _ => t.to_string(),
            }
        });
        return Ok(Target::Daemon {
            url: url.trim_end_matches('/').to_string(),
            job,
            token: config.and_then(|c| c.token),
        });
    }
    if let Some(dir) = given.map(Path::new).filter(|p| p.is_dir()) {
        return Ok(Target::Folder(dir.to_path_buf()));
    }
    let hls_root = config.expect("loaded above").hls_root;
    match given {
        Some(id) => {
            let dir = hls_root.join(id);
            if id.contains('/') || !dir.is_dir() {
                bail!(
                    "{id} is neither a folder nor a job in {}",
                    hls_root.display()
                );
            }
            Ok(Target::Folder(dir))
        }
        None => newest_job(&hls_root)
            .map(Target::Folder)
            .with_context(|| format!("no jobs in {}", hls_root.display())),
    }
}

/// The running job, else the one whose folder changed last.
fn newest_job(hls_root: &Path) -> Option<PathBuf> {
    let mut folders: Vec<(bool, std::time::SystemTime, PathBuf)> = std::fs::read_dir(hls_root)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let folder = JobFolder::read(&e.path());
            let changed = e.metadata().ok()?.modified().ok()?;
            Some((folder.state() == Some("running"), changed, e.path()))
        })
        .collect();
    folders.sort();
    folders.pop().map(|(_, _, path)| path)
}

fn read(target: &Target) -> anyhow::Result<Status> {
    match target {
        Target::Folder(dir) => {
            if !dir.is_dir() {
                bail!("{} is gone", dir.display());
            }
            Ok(status::from_folder(&JobFolder::read(dir)))
        }
        Target::Daemon { url, job, token } => {
            let path = match job {
                Some(id) => format!("/api/jobs/{id}"),
                None => "/api/jobs".to_string(),
            };
            let body =
                get_json(&format!("{url}{path}"), token.as_deref()).map_err(anyhow::Error::msg)?;
            let job = match job {
                Some(_) => body,
                None => pick_job(&body).context("the daemon has no jobs")?,
            };
            Ok(status::from_job_json(&job))
        }
    }
}

/// The running job of a `/api/jobs` listing, else the newest (the daemon lists newest first).
fn pick_job(listing: &serde_json::Value) -> Option<serde_json::Value> {
    let jobs = listing.get("jobs")?.as_array()?;
    jobs.iter()
        .find(|j| j.get("state").and_then(|s| s.as_str()) == Some("running"))
        .or_else(|| jobs.first())
        .cloned()
}

fn get_json(url: &str, token: Option<&str>) -> Result<serde_json::Value, String> {
    let mut request = ureq::get(url).timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request = request.set("X-Liveup-Token", token);
    }
    match request.call() {
        Ok(response) => response
            .into_json()
            .map_err(|e| format!("{url}: not JSON: {e}")),
        Err(ureq::Error::Status(code, response)) => {
            let body = response.into_string().unwrap_or_default();
            Err(format!("{url}: HTTP {code}: {}", body.trim()))
        }
        Err(e) => Err(format!("cannot reach the daemon at {url}: {e}")),
    }
}
