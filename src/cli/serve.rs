//! `liveup serve`: the always-on daemon.

use std::sync::Arc;

use anyhow::{bail, Context};

use super::ServeArgs;
use crate::config::Config;
use crate::jellyfin::JellyfinClient;
use crate::jobs::shared::SharedStore;
use crate::jobs::store::{FileStore, JobStore};
use crate::jobs::variants::{LadderSettings, Variants};
use crate::jobs::{intake, JobManager, ManagerSettings, Priority};
use crate::media::Tools;
use crate::server::{self, AppState};
use crate::upscale::{self, runtime};
use crate::watch;

const BLOCKING_THREADS: usize = 32;
/// A new library file is queued once it has not changed for this long.
const WATCH_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    if config.requires_token() && config.token.is_none() {
        bail!(
            "bind {} is reachable from other machines: set `token` (or LIVEUP_TOKEN)",
            config.bind
        );
    }
    let tools = Tools::from_env();
    let ffmpeg_version = tools.ffmpeg_version().context("ffmpeg is required")?;
    let engine = config.engine_options();
    // Load the model once now, so a missing library, model or device stops start-up.
    let device = upscale::build(&config.model, &engine)?.device();
    let doctor = crate::doctor::examine(&config, &tools, Some(Ok(device.clone())));
    let encoder = crate::doctor::encoder(&config, &device, &doctor).map_err(anyhow::Error::msg)?;
    tracing::info!(
        encoder = %encoder.codec,
        hwaccel = encoder.hwaccel.as_deref().unwrap_or("none"),
        "encoder chosen ({} asked)",
        config.encoder
    );
    for check in &doctor.checks {
        match (&check.fix, check.ok) {
            (_, true) => tracing::info!("✓ {}: {}", check.name, check.detail),
            (Some(fix), false) => tracing::warn!("✗ {}: {} (fix: {fix})", check.name, check.detail),
            (None, false) => tracing::warn!("✗ {}: {}", check.name, check.detail),
        }
    }
    let jellyfin = match (&config.jellyfin_url, &config.jellyfin_api_key) {
        (Some(url), Some(key)) => Some(Arc::new(JellyfinClient::new(url, key)?)),
        _ => None,
    };
    for root in [&config.hls_root, &config.output_root] {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    }
    let (devices, jobs_per_device) = config.slots();
    let store: Arc<dyn JobStore> = match &config.database_url {
        Some(url) => {
            let host = config.host_id();
            let shared = SharedStore::connect(
                url,
                &host,
                std::time::Duration::from_secs(config.lease_seconds),
                &config.hls_root,
            )
            .with_context(|| format!("database_url {}", redacted(url)))?;
            tracing::info!(host = %host, lease_seconds = config.lease_seconds, "sharing the library's jobs through PostgreSQL");
            Arc::new(shared)
        }
        None => Arc::new(FileStore::new(&config.hls_root)),
    };
    let manager = JobManager::new(
        ManagerSettings {
            hls_root: config.hls_root.clone(),
            output_root: config.output_root.clone(),
            model: config.model.clone(),
            engine,
            segment_seconds: config.segment_seconds,
            devices,
            jobs_per_device,
            jit_restart_seconds: config.jit_restart_seconds as f64,
            throttle_ahead_seconds: config.throttle_ahead_seconds as f64,
            session_timeout: std::time::Duration::from_secs(config.session_timeout_seconds),
            live_fallback_model: config.live_fallback_model.clone(),
            min_free_bytes: config.min_free_space_mb * crate::disk::MIB,
            encoder,
        },
        tools,
        store,
    );
    let resumed = manager.recover();
    manager.start_listening();
    manager.start_supervisor();
    if resumed > 0 {
        tracing::info!("picked up {resumed} unfinished job(s)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // File opens and reads come from the page cache in microseconds: a few threads keep
        // up with hundreds of viewers, and hundreds would only take turns on the cores.
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()?;
    let ladders = LadderSettings {
        format: config.segment_format,
        profiles: config.profiles.clone(),
        default_profile: config.default_profile.clone(),
        lock_seconds: config.variant_lock_seconds,
    };
    let variants = Variants::new(
        Arc::clone(&manager),
        Tools::from_env(),
        ladders,
        runtime.handle().clone(),
    );
    let generations = variants.recover();
    if generations > 0 {
        tracing::info!("picked up {generations} unfinished rung generation(s)");
    }
    let state = Arc::new(AppState {
        config,
        manager: Arc::clone(&manager),
        variants,
        jellyfin,
        http: Default::default(),
        device,
        doctor,
        ffmpeg_version,
        onnxruntime_version: runtime::version(),
        bound_url: Default::default(),
    });
    let result = runtime.block_on(async {
        let _watcher = start_watcher(&state)?;
        start_cleanup_timer(&state);
        server::serve(
            Arc::clone(&state),
            |address| {
                println!(
                    "liveup listening on http://{address}{}",
                    state.config.base_path
                );
                tracing::info!(%address, device = %state.device, "serving");
            },
            shutdown_signal(),
        )
        .await?;
        Ok::<(), anyhow::Error>(())
    });
    tracing::info!("stopping: saving jobs and stopping every ffmpeg");
    manager.shutdown();
    manager.hand_back();
    result
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

fn start_watcher(state: &Arc<AppState>) -> anyhow::Result<Option<watch::LibraryWatcher>> {
    if state.config.watch_dirs.is_empty() {
        return Ok(None);
    }
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let watcher = watch::LibraryWatcher::spawn(&state.config.watch_dirs, WATCH_SETTLE, ready_tx)?;
    let state = Arc::clone(state);
    tokio::spawn(async move {
        while let Some(path) = ready.recv().await {
            let state = Arc::clone(&state);
            let queued = tokio::task::spawn_blocking(move || {
                let roots = &state.config.media_roots;
                intake::admit(&state.manager, roots, &path, None, Priority::Library)
                    .map(|submitted| submitted.job.id)
            })
            .await;
            match queued {
                Ok(Ok(id)) => tracing::info!(job = %id, "new library file queued"),
                Ok(Err(error)) => tracing::warn!("library file not queued: {error}"),
                Err(error) => tracing::error!("watcher task failed: {error}"),
            }
        }
    });
    Ok(Some(watcher))
}

/// Runs `liveup cleanup`'s policy (default max-age) every `cleanup_interval_seconds`, keeping
/// every job this daemon has queued, running or being watched, whatever its folder says.
fn start_cleanup_timer(state: &Arc<AppState>) {
    let seconds = state.config.cleanup_interval_seconds;
    if seconds == 0 {
        return;
    }
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(seconds));
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let state = Arc::clone(&state);
            let swept = tokio::task::spawn_blocking(move || {
                let mut busy: std::collections::HashSet<String> = state
                    .manager
                    .list()
                    .into_iter()
                    .filter(|job| job.state.is_active())
                    .map(|job| job.id)
                    .collect();
                busy.extend(state.manager.sessions().into_iter().map(|s| s.job_id));
                let policy = super::cleanup::policy::Policy {
                    max_age: std::time::Duration::from_secs_f64(
                        super::cleanup::DEFAULT_MAX_AGE_HOURS * 3600.0,
                    ),
                    completed_only: false,
                    dry_run: false,
                };
                super::cleanup::policy::sweep(
                    &state.config.hls_root,
                    &state.config.output_root,
                    &policy,
                    &busy,
                )
            })
            .await;
            match swept {
                Ok(Ok(report)) => {
                    for entry in &report.entries {
                        if entry.action == super::cleanup::policy::Action::Removed {
                            tracing::info!(folder = %entry.name, bytes = entry.bytes, "cleanup: {}", entry.reason);
                        } else if entry.action == super::cleanup::policy::Action::Refused {
                            tracing::warn!(folder = %entry.name, "cleanup: {}", entry.reason);
                        }
                    }
                }
                Ok(Err(error)) => tracing::warn!("cleanup failed: {error}"),
                Err(error) => tracing::error!("cleanup task failed: {error}"),
            }
        }
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
