//! `liveup cleanup`: frees the disk that finished and abandoned HLS folders take, by the policy
//! in [`policy`]; deletion itself and its safety checks are in [`remove`].

pub mod policy;
pub mod remove;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, Context};

use super::job_folder::human_bytes;
use super::CleanupArgs;
use crate::config::Config;
use policy::{Action, Policy, Report};

/// Abandoned folders untouched for this long go, unless `--max-age` says otherwise.
pub const DEFAULT_MAX_AGE_HOURS: f64 = 24.0;

pub fn run(args: CleanupArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    if !(args.max_age >= 0.0 && args.max_age.is_finite()) {
        bail!(
            "--max-age must be a number of hours ≥ 0, got {}",
            args.max_age
        );
    }
    let policy = Policy {
        max_age: Duration::from_secs_f64(args.max_age * 3600.0),
        completed_only: args.completed_only,
        dry_run: args.dry_run,
    };
    let report = policy::sweep(
        &config.hls_root,
        &config.output_root,
        &policy,
        &HashSet::new(),
    )
    .map_err(anyhow::Error::msg)
    .with_context(|| format!("cleaning {}", config.hls_root.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// One line per folder, then the total.
pub fn render(report: &Report) -> String {
    let mut text = String::new();
    for entry in &report.entries {
        let action = match entry.action {
            Action::Removed => "removed",
            Action::WouldRemove => "would remove",
            Action::Kept => "kept",
            Action::Refused => "REFUSED",
        };
        text.push_str(&format!(
            "{action:<13}{:>11}  {}  {}\n",
            human_bytes(entry.bytes),
            entry.name,
            entry.reason
        ));
    }
    let count = report
        .entries
        .iter()
        .filter(|e| matches!(e.action, Action::Removed | Action::WouldRemove))
        .count();
    let folders = if count == 1 { "folder" } else { "folders" };
    if report.dry_run {
        text.push_str(&format!(
            "would free {} in {count} {folders} (dry run: nothing deleted)\n",
            human_bytes(report.freed_bytes)
        ));
    } else {
        text.push_str(&format!(
            "freed {} in {count} {folders}\n",
            human_bytes(report.freed_bytes)
        ));
    }
    text
}
