//! Library watcher: notices films that newly appear in the watched library folders and reports
//! each one once it has stopped changing.
//!
//! [`LibraryWatcher::spawn`] watches every folder recursively (inotify on Linux, through
//! `notify`). Every create / write / rename-to event on a [video candidate](is_video_candidate)
//! starts tracking the file; a tracked file is *ready* when it exists, is a regular file (symlinks
//! are followed), is not empty, and neither its size nor its modification time has changed — and
//! no write event has arrived for it — for the whole `settle` period. Its canonical path is then
//! sent once on the `ready` channel.
//!
//! - A growing file is never reported while it grows: every write event restarts its settle
//!   period, and so does a size or mtime change seen by the periodic check.
//! - A path is reported again only when what is there changed (another size or mtime): a file
//!   being replaced by a new one is reported, a `chmod`, a read or a move away and back is not.
//! - Files removed (or moved out) before settling are forgotten.
//! - A file renamed from a partial name (`film.mkv.part`) to a video name counts as appearing; so
//!   does every video inside a folder created in or moved into the library.
//! - Files present when the watcher starts are not reported, unless they are written to later.
//! - Hidden files, and anything inside hidden folders of the library (`.Trash-1000/`, rsync's
//!   temporary files, …), are ignored.
//!
//! The settle check runs on its own thread (no tokio runtime needed), every `settle / 4`
//! (between 10 ms and 1 s), and only while something is being tracked.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// File extensions (lower case) of the video files liveup picks up: containers ffmpeg reads.
/// Disc images (`.iso`, `.img`), Jellyfin's `.strm` link files and ambiguous extensions (`.dat`,
/// `.bin`) are deliberately absent.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "3g2", "3gp", "asf", "avi", "divx", "dv", "dvr-ms", "f4v", "flv", "m2t", "m2ts", "m2v", "m4v",
    "mk3d", "mkv", "mov", "mp4", "mpe", "mpeg", "mpg", "mts", "mxf", "nuv", "ogm", "ogv", "qt",
    "rm", "rmvb", "tp", "trp", "ts", "vob", "webm", "wmv", "wtv", "xvid",
];

/// The suffix of liveup's own final files; they must never be queued again.
/// liveup's own final files: the daemon's MP4, `liveup upscale`'s MPEG-TS.
const OWN_OUTPUT_SUFFIXES: [&str; 2] = [".upscaled.mp4", ".upscaled.ts"];

/// How often tracked files are checked: `settle / 4`, within these bounds.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(10);
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start the file watcher: {0}")]
    Init(#[source] notify::Error),
    #[error("library folder {}: {source}", dir.display())]
    Unreadable { dir: PathBuf, source: io::Error },
    #[error("library folder {} is not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("cannot watch library folder {}: {source}", dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[source] io::Error),
}

impl WatchError {
    /// The library folder the error is about, if it is about one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            WatchError::Unreadable { dir, .. }
            | WatchError::NotADirectory { dir }
            | WatchError::Watch { dir, .. } => Some(dir),
            WatchError::Init(_) | WatchError::Thread(_) => None,
        }
    }
}

/// Whether `path`'s file name is that of a finished video file liveup may pick up: a video
/// extension (any case), not hidden, not a partial download or temporary copy, not liveup's own
/// output. Looks at the name only, never at the disk.
pub fn is_video_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    let name = name.to_string_lossy().to_lowercase();
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    if name.contains(".partial.") || OWN_OUTPUT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    // `.part`, `.partial`, `.tmp`, `.crdownload`, `.!qb`, `.aria2`, … end in no video extension.
    match name.rsplit_once('.') {
        Some((stem, ext)) => !stem.is_empty() && VIDEO_EXTENSIONS.contains(&ext),
        None => false,
    }
}

/// Watches library folders while it lives; dropping it stops the watching (and the reports).
pub struct LibraryWatcher {
    dirs: Vec<PathBuf>,
    stop: Arc<AtomicBool>,
    // Dropped after `Drop::drop` has raised `stop`: ends the inotify thread, whose event sender
    // going away then ends the settle thread.
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for LibraryWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibraryWatcher")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

impl LibraryWatcher {
    /// Starts watching every folder of `dirs` recursively; the canonical path of every video file
    /// that appears in them is sent on `ready` once it has not changed for `settle`.
    ///
    /// Fails, naming the folder, when one does not exist, is not a directory or cannot be watched
    /// (for instance when inotify's `max_user_watches` is too low for the tree).
    pub fn spawn(
        dirs: &[PathBuf],
        settle: Duration,
        ready: UnboundedSender<PathBuf>,
    ) -> Result<LibraryWatcher, WatchError> {
        let mut roots = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let root = std::fs::canonicalize(dir).map_err(|source| WatchError::Unreadable {
                dir: dir.clone(),
                source,
            })?;
            let meta = std::fs::metadata(&root).map_err(|source| WatchError::Unreadable {
                dir: dir.clone(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(WatchError::NotADirectory { dir: dir.clone() });
            }
            if let Err(source) = std::fs::read_dir(&root) {
                return Err(WatchError::Unreadable {
                    dir: dir.clone(),
                    source,
                });
            }
            if !roots.contains(&root) {
                roots.push(root);
            }
        }

        let (events_tx, events_rx) = mpsc::channel::<notify::Result<Event>>();
        let mut watcher = notify::recommended_watcher(events_tx).map_err(WatchError::Init)?;
        for (dir, root) in dirs.iter().zip(&roots) {
            watcher
                .watch(root, RecursiveMode::Recursive)
                .map_err(|source| WatchError::Watch {
                    dir: dir.clone(),
                    source,
                })?;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let tracker = Tracker::new(roots.clone(), settle);
        let thread_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("liveup-watch".into())
            .spawn(move || run(tracker, events_rx, ready, thread_stop))
            .map_err(WatchError::Thread)?;

        tracing::info!(
            dirs = ?roots,
            settle_ms = settle.as_millis() as u64,
            "watching library folders"
        );
        Ok(LibraryWatcher {
            dirs: roots,
            stop,
            _watcher: watcher,
        })
    }

    /// The watched folders, canonical.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for LibraryWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The settle thread: applies events, checks tracked files periodically, sends the ready ones.
fn run(
    mut tracker: Tracker,
    events: mpsc::Receiver<notify::Result<Event>>,
    ready: UnboundedSender<PathBuf>,
    stop: Arc<AtomicBool>,
) {
    let interval = (tracker.settle / 4).clamp(MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL);
    let mut next_check = Instant::now();
    loop {
        let received = if tracker.is_idle() {
            events
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            events.recv_timeout(next_check.saturating_duration_since(Instant::now()))
        };
        match received {
            Ok(Ok(event)) => tracker.on_event(&event, Instant::now()),
            Ok(Err(error)) => tracing::warn!(%error, "library watcher"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if stop.load(Ordering::SeqCst) || ready.is_closed() {
            break;
        }
        let now = Instant::now();
        if now >= next_check {
            next_check = now + interval;
            for path in tracker.check(now) {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                tracing::info!(path = %path.display(), "new film in the library");
                if ready.send(path).is_err() {
                    return;
                }
            }
        }
    }
    tracing::debug!("library watcher stopped");
}

/// What identifies a file's content for settling and for not reporting it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    len: u64,
    modified: Option<SystemTime>,
}

impl Signature {
    fn of(meta: &std::fs::Metadata) -> Signature {
        Signature {
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

#[derive(Debug)]
struct Pending {
    /// What the file was at the last look; `None` if it could not be read then.
    seen: Option<Signature>,
    /// When it last changed or had an event.
    since: Instant,
}

/// The watcher's state, apart from the threads: which files are settling, which were reported.
struct Tracker {
    roots: Vec<PathBuf>,
    settle: Duration,
    started: SystemTime,
    pending: HashMap<PathBuf, Pending>,
    /// Folders that appeared, to scan once more when due (files created in them before inotify
    /// watched them gave no event).
    rescans: Vec<(PathBuf, Instant)>,
    /// Canonical path → what was reported there.
    reported: HashMap<PathBuf, Signature>,
}

impl Tracker {
    fn new(roots: Vec<PathBuf>, settle: Duration) -> Tracker {
        Tracker {
            roots,
            settle,
            started: SystemTime::now(),
            pending: HashMap::new(),
            rescans: Vec::new(),
            reported: HashMap::new(),
        }
    }

    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.rescans.is_empty()
    }

    fn on_event(&mut self, event: &Event, now: Instant) {
        if event.need_rescan() {
            self.rescan_recent(now);
        }
        match event.kind {
            EventKind::Create(CreateKind::Folder) => {
                for path in &event.paths {
                    self.dir_appeared(path, now);
                }
            }
            EventKind::Create(_) => {
                for path in &event.paths {
                    self.appeared(path, now);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                for path in &event.paths {
                    self.forget(path);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                for path in &event.paths {
                    self.appeared(path, now);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to] = event.paths.as_slice() {
                    self.forget(from);
                    self.appeared(to, now);
                }
            }
            EventKind::Modify(ModifyKind::Name(_)) => {
                for path in &event.paths {
                    if path.exists() {
                        self.appeared(path, now);
                    } else {
                        self.forget(path);
                    }
                }
            }
            // A `chmod` or `touch` alone does not make an old file new, but delays a settling one.
            EventKind::Modify(ModifyKind::Metadata(_)) => {
                for path in &event.paths {
                    if let Some(pending) = self.pending.get_mut(path) {
                        pending.since = now;
                    }
                }
            }
            EventKind::Modify(_) => {
                for path in &event.paths {
                    self.touched(path, now);
                }
            }
            EventKind::Remove(kind) => {
                for path in &event.paths {
                    self.forget(path);
                    if kind != RemoveKind::File && self.roots.iter().any(|root| root == path) {
                        tracing::warn!(
                            dir = %path.display(),
                            "library folder removed; it is no longer watched"
                        );
                    }
                }
            }
            EventKind::Access(_) | EventKind::Any | EventKind::Other => {}
        }
    }

    /// Whether `path` is a candidate and not inside a hidden folder of a library.
    fn wanted(&self, path: &Path) -> bool {
        if !is_video_candidate(path) {
            return false;
        }
        match self
            .roots
            .iter()
            .find_map(|root| path.strip_prefix(root).ok())
        {
            Some(relative) => !relative
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.')),
            None => true,
        }
    }

    /// A path that was created or renamed into place: a folder to scan, or a file to track.
    fn appeared(&mut self, path: &Path, now: Instant) {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => self.dir_appeared(path, now),
            _ => self.touched(path, now),
        }
    }

    /// A candidate file was written to (or appeared): (re)start its settle period.
    fn touched(&mut self, path: &Path, now: Instant) {
        if let Some(pending) = self.pending.get_mut(path) {
            pending.since = now;
            return;
        }
        if !self.wanted(path) {
            return;
        }
        let seen = std::fs::metadata(path)
            .ok()
            .map(|meta| Signature::of(&meta));
        tracing::debug!(path = %path.display(), "tracking");
        self.pending
            .insert(path.to_path_buf(), Pending { seen, since: now });
    }

    /// Tracks a file found by a scan, unless it is tracked already or was reported as it is.
    fn found(&mut self, path: PathBuf, meta: &std::fs::Metadata, now: Instant) {
        if self.pending.contains_key(&path) || !self.wanted(&path) {
            return;
        }
        let seen = Signature::of(meta);
        if let Ok(canonical) = std::fs::canonicalize(&path) {
            if self.reported.get(&canonical) == Some(&seen) {
                return;
            }
        }
        tracing::debug!(path = %path.display(), "tracking (found by a scan)");
        self.pending.insert(
            path,
            Pending {
                seen: Some(seen),
                since: now,
            },
        );
    }

    /// A folder was created in or moved into a library: its videos are new, now and once more
    /// after the settle period (inotify watches a new folder only some time after it appeared).
    fn dir_appeared(&mut self, dir: &Path, now: Instant) {
        if !self.in_visible_dir(dir) {
            return;
        }
        self.scan(dir, now, None);
        let due = now + self.settle.max(Duration::from_millis(100));
        match self.rescans.iter_mut().find(|(d, _)| d == dir) {
            Some(entry) => entry.1 = due,
            None => self.rescans.push((dir.to_path_buf(), due)),
        }
    }

    fn in_visible_dir(&self, dir: &Path) -> bool {
        match self
            .roots
            .iter()
            .find_map(|root| dir.strip_prefix(root).ok())
        {
            Some(relative) => !relative
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.')),
            None => true,
        }
    }

    /// Tracks the candidate files under `dir` (symlinked folders are not followed), only those
    /// modified since `newer_than` when given.
    fn scan(&mut self, dir: &Path, now: Instant, newer_than: Option<SystemTime>) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => stack.push(path),
                    Ok(_) => {
                        if !is_video_candidate(&path) {
                            continue;
                        }
                        let Ok(meta) = std::fs::metadata(&path) else {
                            continue;
                        };
                        let recent = match (newer_than, meta.modified()) {
                            (None, _) => true,
                            (Some(limit), Ok(modified)) => modified >= limit,
                            (Some(_), Err(_)) => false,
                        };
                        if meta.is_file() && recent {
                            self.found(path, &meta, now);
                        }
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// inotify's queue overflowed: events were lost. Scan every library for videos modified since
    /// the watcher started (a file moved in with an older mtime is missed in this case).
    fn rescan_recent(&mut self, now: Instant) {
        tracing::warn!("file events were lost (inotify queue overflow); rescanning the libraries");
        let roots = self.roots.clone();
        for root in &roots {
            self.scan(root, now, Some(self.started));
        }
    }

    /// Forgets a removed or moved-away path and anything tracked under it.
    fn forget(&mut self, path: &Path) {
        self.pending.retain(|tracked, _| !tracked.starts_with(path));
        self.rescans.retain(|(dir, _)| !dir.starts_with(path));
    }

    /// Runs the due folder rescans, looks at every tracked file, and returns the canonical paths
    /// of those that are ready (each removed from tracking).
    fn check(&mut self, now: Instant) -> Vec<PathBuf> {
        let due: Vec<PathBuf> = self
            .rescans
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(dir, _)| dir.clone())
            .collect();
        if !due.is_empty() {
            self.rescans.retain(|(_, at)| *at > now);
            for dir in &due {
                self.scan(dir, now, None);
            }
        }

        let mut settled = Vec::new();
        self.pending.retain(|path, pending| {
            let meta = match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => return false,
                Err(error) => {
                    tracing::debug!(path = %path.display(), %error, "no longer tracked");
                    return false;
                }
            };
            let now_seen = Signature::of(&meta);
            if pending.seen != Some(now_seen) {
                pending.seen = Some(now_seen);
                pending.since = now;
                return true;
            }
            if now_seen.len == 0 || now.duration_since(pending.since) < self.settle {
                return true;
            }
            settled.push((path.clone(), now_seen));
            false
        });

        let mut ready = Vec::new();
        for (path, seen) in settled {
            let canonical = match std::fs::canonicalize(&path) {
                Ok(canonical) => canonical,
                Err(error) => {
                    tracing::debug!(path = %path.display(), %error, "vanished while settling");
                    continue;
                }
            };
            if self.reported.get(&canonical) == Some(&seen) {
                continue;
            }
            self.reported.insert(canonical.clone(), seen);
            if !ready.contains(&canonical) {
                ready.push(canonical);
            }
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    const SETTLE: Duration = Duration::from_millis(300);

    fn start(dir: &Path, settle: Duration) -> (LibraryWatcher, UnboundedReceiver<PathBuf>) {
        let (tx, rx) = unbounded_channel();
        let watcher = LibraryWatcher::spawn(&[dir.to_path_buf()], settle, tx).unwrap();
        (watcher, rx)
    }

    /// Everything reported within `window`.
    async fn collect(rx: &mut UnboundedReceiver<PathBuf>, window: Duration) -> Vec<PathBuf> {
        let deadline = tokio::time::Instant::now() + window;
        let mut got = Vec::new();
        while let Ok(Some(path)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            got.push(path);
        }
        got
    }

    /// The next report, failing the test after `limit`.
    async fn next(rx: &mut UnboundedReceiver<PathBuf>, limit: Duration) -> PathBuf {
        tokio::time::timeout(limit, rx.recv())
            .await
            .expect("nothing reported in time")
            .expect("watcher channel closed")
    }

    fn canonical(path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap()
    }

    #[test]
    fn video_candidates_by_name() {
        let table: &[(&str, bool)] = &[
            ("film.mkv", true),
            ("Film (2020).MKV", true),
            ("/lib/Some Film/film.Mp4", true),
            ("a.m4v", true),
            ("a.mov", true),
            ("a.avi", true),
            ("a.ts", true),
            ("a.m2ts", true),
            ("a.mts", true),
            ("a.webm", true),
            ("a.wmv", true),
            ("a.mpg", true),
            ("a.MPEG", true),
            ("a.flv", true),
            ("a.ogv", true),
            ("a.3gp", true),
            ("Harry.Potter.Part.1.mkv", true),
            (".film.mkv", false),
            (".film.mkv.AbC123", false),
            (".mkv", false),
            ("film.mkv.part", false),
            ("film.mkv.partial", false),
            ("film.partial.mkv", false),
            ("film.mkv.tmp", false),
            ("film.mkv.crdownload", false),
            ("film.mkv.!qB", false),
            ("film.mkv.aria2", false),
            ("film.mkv~", false),
            ("film.upscaled.ts", false),
            ("film.UPSCALED.TS", false),
            ("film.upscaled.mp4", false),
            ("film.upscaled.mp4.partial", false),
            ("film.upscaled.ts.partial", false),
            ("film.nfo", false),
            ("film.srt", false),
            ("poster.jpg", false),
            ("notes.txt", false),
            ("film.strm", false),
            ("film.iso", false),
            ("mkv", false),
            ("film", false),
            ("/", false),
            ("", false),
        ];
        for &(name, expected) in table {
            assert_eq!(is_video_candidate(Path::new(name)), expected, "{name:?}");
        }
    }

    #[tokio::test]
    async fn growing_file_is_reported_once_after_its_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let (_watcher, mut rx) = start(dir.path(), SETTLE);
        let path = dir.path().join("film.mkv");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..10 {
            file.write_all(&chunk).unwrap();
            file.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(rx.try_recv().is_err(), "reported while still growing");
        }
        file.write_all(&chunk).unwrap();
        drop(file);
        let last_write = Instant::now();

        let got = next(&mut rx, Duration::from_secs(2)).await;
        let waited = last_write.elapsed();
        assert_eq!(got, canonical(&path));
        assert!(waited >= SETTLE, "reported {waited:?} after the last write");
        assert_eq!(std::fs::metadata(&got).unwrap().len(), 11 * 64 * 1024);
        let again = collect(&mut rx, Duration::from_millis(700)).await;
        assert!(again.is_empty(), "reported again: {again:?}");
    }

    #[tokio::test]
    async fn non_videos_hidden_partial_and_own_outputs_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (_watcher, mut rx) = start(dir.path(), Duration::from_millis(200));
        std::fs::create_dir(dir.path().join(".Trash-1000")).unwrap();
        for name in [
            "film.nfo",
            "film.srt",
            "poster.jpg",
            ".hidden.mkv",
            "film.mkv.part",
            "film.mkv.!qB",
            "film.upscaled.ts",
            "film.upscaled.ts.partial",
            ".Trash-1000/deleted.mkv",
        ] {
            std::fs::write(dir.path().join(name), b"not empty").unwrap();
        }
        // An empty video is never ready either.
        std::fs::write(dir.path().join("empty.mkv"), b"").unwrap();
        // The one that counts, so that silence above means something.
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(dir.path().join("real.mp4"), b"video").unwrap();

        let got = collect(&mut rx, Duration::from_millis(1200)).await;
        assert_eq!(got, vec![canonical(&dir.path().join("real.mp4"))]);
    }

    #[tokio::test]
    async fn partial_download_renamed_to_a_video_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (_watcher, mut rx) = start(dir.path(), Duration::from_millis(200));
        let partial = dir.path().join("film.mkv.part");
        std::fs::write(&partial, vec![1u8; 4096]).unwrap();
        let early = collect(&mut rx, Duration::from_millis(500)).await;
        assert!(early.is_empty(), "partial file reported: {early:?}");

        let done = dir.path().join("film.mkv");
        std::fs::rename(&partial, &done).unwrap();
        assert_eq!(
            next(&mut rx, Duration::from_secs(2)).await,
            canonical(&done)
        );
    }

    #[tokio::test]
    async fn files_in_subfolders_are_reported() {
        let parent = tempfile::tempdir().unwrap();
        let library = parent.path().join("library");
        let existing = library.join("Old Film (1999)");
        std::fs::create_dir_all(&existing).unwrap();
        let (_watcher, mut rx) = start(&library, Duration::from_millis(200));

        // In a folder that was there already.
        let a = existing.join("old.mkv");
        std::fs::write(&a, b"aaaa").unwrap();
        // In folders created now, at once with the file.
        let deep = library.join("New Film (2024)").join("extras");
        std::fs::create_dir_all(&deep).unwrap();
        let b = deep.join("new.mp4");
        std::fs::write(&b, b"bbbb").unwrap();
        // In a folder moved in whole, as download clients and Radarr do.
        let outside = parent.path().join("Moved Film (2001)");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("moved.mkv"), b"cccc").unwrap();
        std::fs::write(outside.join("moved.nfo"), b"dddd").unwrap();
        let moved = library.join("Moved Film (2001)");
        std::fs::rename(&outside, &moved).unwrap();
        let c = moved.join("moved.mkv");

        let mut got = collect(&mut rx, Duration::from_millis(1500)).await;
        got.sort();
        let mut expected = vec![canonical(&a), canonical(&b), canonical(&c)];
        expected.sort();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn files_present_at_start_are_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.mkv");
        std::fs::write(&old, b"old film").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("older.mkv"), b"older").unwrap();
        let (_watcher, mut rx) = start(dir.path(), Duration::from_millis(200));

        // Reading and chmod-ing an old file does not make it new.
        assert_eq!(std::fs::read(&old).unwrap(), b"old film");
        let mut permissions = std::fs::metadata(&old).unwrap().permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(&old, permissions).unwrap();
        let new = dir.path().join("new.mkv");
        std::fs::write(&new, b"new film").unwrap();

        let got = collect(&mut rx, Duration::from_millis(1000)).await;
        assert_eq!(got, vec![canonical(&new)]);
    }

    #[tokio::test]
    async fn replaced_file_is_reported_again_removed_one_never() {
        let dir = tempfile::tempdir().unwrap();
        let settle = Duration::from_millis(200);
        let (_watcher, mut rx) = start(dir.path(), settle);
        let path = dir.path().join("film.mkv");
        std::fs::write(&path, b"first version").unwrap();
        assert_eq!(
            next(&mut rx, Duration::from_secs(1)).await,
            canonical(&path)
        );

        // Written to again but left as it was (same size and mtime), or only chmod-ed: not
        // reported again. New content is.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        (&file).write_all(b"first").unwrap();
        file.set_modified(modified).unwrap();
        drop(file);
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(&path, permissions).unwrap();
        let quiet = collect(&mut rx, Duration::from_millis(500)).await;
        assert!(quiet.is_empty(), "reported again unchanged: {quiet:?}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"second, longer version").unwrap();
        // Removed before settling: forgotten.
        let gone = dir.path().join("gone.mkv");
        std::fs::write(&gone, b"short-lived").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::remove_file(&gone).unwrap();

        let got = collect(&mut rx, Duration::from_millis(800)).await;
        assert_eq!(got, vec![canonical(&path)]);
    }

    #[tokio::test]
    async fn dropping_the_watcher_stops_the_reports() {
        let dir = tempfile::tempdir().unwrap();
        let (watcher, mut rx) = start(dir.path(), Duration::from_millis(200));
        std::fs::write(dir.path().join("film.mkv"), b"film").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(watcher);
        let got = collect(&mut rx, Duration::from_millis(600)).await;
        assert!(got.is_empty(), "reported after drop: {got:?}");
    }

    #[test]
    fn a_missing_folder_or_a_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no such library");
        let (tx, _rx) = unbounded_channel();
        let error = LibraryWatcher::spawn(
            &[dir.path().to_path_buf(), missing.clone()],
            SETTLE,
            tx.clone(),
        )
        .unwrap_err();
        assert_eq!(error.dir(), Some(missing.as_path()));
        assert!(
            error.to_string().contains(&missing.display().to_string()),
            "{error}"
        );

        let file = dir.path().join("film.mkv");
        std::fs::write(&file, b"x").unwrap();
        let error = LibraryWatcher::spawn(std::slice::from_ref(&file), SETTLE, tx).unwrap_err();
        assert!(matches!(error, WatchError::NotADirectory { .. }), "{error}");
        assert!(
            error.to_string().contains(&file.display().to_string()),
            "{error}"
        );
    }
}
