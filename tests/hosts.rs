//! Several `liveup serve` hosts working one library through the real PostgreSQL on this machine
//! (127.0.0.1:5432; `scripts/setup` installs and starts Debian's when none answers): three
//! processes on loopback ports, sharing the media, HLS and output folders, each test in a
//! database of its own that it drops at the end.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{request, Daemon, Layout};
use common::Clip;

/// What `scripts/setup` gives the `postgres` user of a PostgreSQL it installs (one that trusts
/// loopback connections, as this machine's, ignores it).
const PASSWORD: &str = "liveup-tests";

/// A database of its own for one test, dropped at the end.
struct Database {
    name: String,
}

impl Database {
    fn create(test: &str) -> Database {
        let name = format!("liveup_{test}_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}"));
        Database { name }
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:5432/{}",
            self.name
        )
    }

    fn query(&self, sql: &str) -> String {
        psql_in(&self.name, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn psql(sql: &str) {
    psql_in("postgres", sql);
}

/// Runs `sql` in `database`; its output, unaligned.
fn psql_in(database: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .env("PGPASSWORD", PASSWORD)
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
        .args(["-X", "-A", "-t", "-c", sql])
        .output()
        .expect("psql runs (scripts/setup installs PostgreSQL)");
    assert!(
        output.status.success(),
        "PostgreSQL on 127.0.0.1:5432 refused {sql}: {} (scripts/setup starts it)",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `count` hosts sharing `layout`'s folders and `database`.
fn start_hosts(layout: &Layout, database: &Database, count: usize, extra: &str) -> Vec<Daemon> {
    (0..count)
        .map(|i| {
            let config = layout.dir.path().join(format!("host-{i}.toml"));
            std::fs::write(
                &config,
                format!(
                    "bind = \"127.0.0.1:0\"\nmedia_roots = [{:?}]\nhls_root = {:?}\n\
                     output_root = {:?}\nsegment_seconds = 1\ndevice = \"cpu\"\n\
                     database_url = \"{}\"\nhost_id = \"host-{i}\"\n{extra}\n",
                    layout.media,
                    layout.hls,
                    layout.output,
                    database.url()
                ),
            )
            .unwrap();
            Daemon::start(&config)
        })
        .collect()
}

fn jobs(host: &Daemon) -> Vec<serde_json::Value> {
    host.get("/api/jobs").json()["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn job(host: &Daemon, id: &str) -> serde_json::Value {
    host.get(&format!("/api/jobs/{id}")).json()
}

/// Polls host `host` for job `id` until `done` holds.
fn wait_for(host: &Daemon, id: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        let job = job(host, id);
        if done(&job) {
            return;
        }
        assert!(Instant::now() < until, "{what}: {job}\n{}", host.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many runs each job had, over every host's log.
fn runs_started(hosts: &[Daemon]) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for host in hosts {
        for line in strip_colours(&host.log()).lines() {
            if let (true, Some(at)) = (line.contains("job started"), line.find("job=")) {
                let id = line[at + 4..].split_whitespace().next().unwrap_or("");
                *runs.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    runs
}

fn strip_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The final file: every frame once, at strictly increasing times, decoding cleanly.
fn assert_whole(output: &Path, frames: u64) {
    assert_eq!(common::facts(output).frames, frames, "{}", output.display());
    let times = common::video_frame_times(output);
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    assert!(
        sorted.windows(2).all(|p| p[1] > p[0]),
        "strictly increasing: {times:?}"
    );
    let errors = common::decode_errors(output);
    assert!(errors.is_empty(), "{errors}");
}

/// `count` hosts sharing a 16 s clip's job (the AI model: tens of seconds), once it has made
/// `segments`: the hosts, the job's id, and which host runs it.
fn long_job(
    test: &str,
    count: usize,
    extra: &str,
    segments: u64,
) -> (Database, Layout, Vec<Daemon>, String, usize) {
    let database = Database::create(test);
    let layout = Layout::new();
    let film = Clip {
        seconds: 16.0,
        ..Clip::default()
    }
    .make(&layout.media.join("long.mkv"));
    let hosts = start_hosts(&layout, &database, count, extra);
    let id = hosts[0].trigger_path(&film)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(&hosts[0], &id, "a host runs the job", |j| {
        j["state"] == "running"
            && j["host"].is_string()
            && j["segments"].as_u64().unwrap_or(0) >= segments
    });
    let holder = job(&hosts[0], &id)["host"].as_str().unwrap().to_string();
    let index = holder.strip_prefix("host-").unwrap().parse().unwrap();
    (database, layout, hosts, id, index)
}

#[test]
fn a_library_spread_over_three_hosts_is_made_once_and_fifty_triggers_make_one_job() {
    let database = Database::create("library");
    let layout = Layout::new();
    let films: Vec<PathBuf> = (0..6)
        .map(|i| {
            Clip {
                width: 320,
                height: 180,
                seconds: 3.0,
                ..Clip::default()
            }
            .make(&layout.media.join(format!("film-{i}.mkv")))
        })
        .collect();
    let hosts = start_hosts(&layout, &database, 3, "model = \"lanczos\"");

    // Fifty triggers of one film at once, spread over the hosts, with the rest of the library.
    let urls: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
    let ids: BTreeSet<String> = std::thread::scope(|scope| {
        let asked: Vec<_> = (0..50)
            .map(|i| {
                let (url, film) = (&urls[i % 3], &films[0]);
                scope.spawn(move || {
                    let body = serde_json::json!({ "path": film }).to_string();
                    let reply = request(
                        "POST",
                        &format!("{url}/upscale-trigger"),
                        &[],
                        Some(body.as_bytes()),
                    );
                    assert_eq!(reply.status, 200, "{}", reply.body);
                    reply.json()["job_id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        asked.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(
        ids.len(),
        1,
        "fifty triggers over three hosts: one job, {ids:?}"
    );
    for (i, film) in films.iter().enumerate().skip(1) {
        hosts[i % 3].trigger_path(film);
    }

    // Every host lists every job; each completes, once.
    let until = Instant::now() + Duration::from_secs(240);
    loop {
        let listed = jobs(&hosts[2]);
        if listed.len() == 6 && listed.iter().all(|j| j["state"] == "complete") {
            break;
        }
        assert!(Instant::now() < until, "{listed:?}\n{}", hosts[0].log());
        std::thread::sleep(Duration::from_millis(300));
    }
    let runs = runs_started(&hosts);
    assert_eq!(runs.len(), 6, "{runs:?}");
    assert!(
        runs.values().all(|&n| n == 1),
        "each job ran once: {runs:?}"
    );
    let ran_on: BTreeSet<String> = jobs(&hosts[0])
        .iter()
        .map(|j| j["host"].as_str().unwrap_or("none").to_string())
        .collect();
    assert!(ran_on.len() >= 2, "the library was spread: {ran_on:?}");
    for host in &hosts {
        assert_eq!(jobs(host).len(), 6);
    }
    for job in jobs(&hosts[1]) {
        assert_whole(Path::new(job["output"].as_str().unwrap()), 30);
    }
    let rows = database
        .query("SELECT count(*) FROM liveup_jobs WHERE state = 'complete' AND holder IS NULL");
    assert_eq!(rows, "6");
}

#[test]
fn a_host_killed_mid_job_loses_it_to_another_that_finishes_it_seamlessly() {
    let (_database, _layout, mut hosts, id, index) =
        long_job("failover", 3, "lease_seconds = 3", 3);
    let holder = format!("host-{index}");
    let killed_at = Instant::now();
    hosts[index].kill9();
    let survivor = &hosts[(index + 1) % 3];

    wait_for(survivor, &id, "another host takes the job over", |j| {
        j["state"] == "running" && j["host"].as_str().is_some_and(|h| h != holder)
    });
    let taken_after = killed_at.elapsed();
    assert!(
        taken_after < Duration::from_secs(15),
        "taken over {taken_after:?} after the kill (lease 3 s)"
    );
    wait_for(survivor, &id, "the job completes", |j| {
        j["state"] == "complete"
    });
    let done = job(survivor, &id);
    assert_eq!(done["resumes"], 1, "{done}");
    assert_whole(Path::new(done["output"].as_str().unwrap()), 160);
}

#[test]
fn a_seek_on_one_host_restarts_the_run_on_the_host_that_holds_the_job() {
    let (_database, layout, hosts, id, index) = long_job("seek", 2, "jit_restart_seconds = 4", 0);
    let (running, other) = (&hosts[index], &hosts[1 - index]);

    // The viewer is on the other host, far ahead of the run.
    let asked = Instant::now();
    let far = loop {
        let reply = other.get(&format!("/hls/{id}/segment_00012.ts?session=seeker"));
        if reply.status != 503 || asked.elapsed() > Duration::from_secs(120) {
            break reply;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(far.status, 200, "{}", far.body);
    assert!(
        strip_colours(&running.log()).contains("restarting the encoder where the viewer is"),
        "the holder restarted its run:\n{}\nthe other host:\n{}",
        strip_colours(&running.log()),
        strip_colours(&other.log())
    );
    wait_for(other, &id, "the job completes", |j| {
        j["state"] == "complete"
    });
    let dir = layout.hls.join(&id);
    let first_after_jump = common::video_frame_times(&dir.join("segment_00012.ts"));
    assert!(
        (first_after_jump[0] - 12.0).abs() < 0.002,
        "{first_after_jump:?}"
    );
    let done = job(other, &id);
    assert_whole(Path::new(done["output"].as_str().unwrap()), 160);
    assert_eq!(runs_started(&hosts).get(&id), Some(&1), "one host ran it");
}

#[test]
fn a_host_leaving_cleanly_hands_its_job_back_at_once() {
    // A lease far longer than the wait below: only the hand-back can explain a quick take-over.
    let (_database, _layout, mut hosts, id, index) =
        long_job("leaving", 2, "lease_seconds = 120", 2);
    let holder = format!("host-{index}");
    let left_at = Instant::now();
    assert!(hosts[index].terminate().success());
    assert!(
        strip_colours(&hosts[index].log()).contains("handed 1 running job(s) back"),
        "{}",
        hosts[index].log()
    );
    let survivor = &hosts[1 - index];
    wait_for(survivor, &id, "the other host takes the job", |j| {
        j["state"] == "running" && j["host"].as_str().is_some_and(|h| h != holder)
    });
    assert!(
        left_at.elapsed() < Duration::from_secs(30),
        "taken {:?} after the first host left",
        left_at.elapsed()
    );
    wait_for(survivor, &id, "the job completes", |j| {
        j["state"] == "complete"
    });
    assert_whole(
        Path::new(job(survivor, &id)["output"].as_str().unwrap()),
        160,
    );
}

#[test]
fn the_host_running_a_job_throttles_it_for_a_viewer_on_another_host() {
    let (_database, _layout, hosts, id, index) =
        long_job("throttle", 2, "throttle_ahead_seconds = 3", 1);
    let (running, other) = (&hosts[index], &hosts[1 - index]);
    // Nobody watches yet: the job runs on.
    assert_eq!(job(running, &id)["throttled"], false);
    // A viewer at the start of the film, on the host that does not run the job.
    let first = other.get(&format!("/hls/{id}/segment_00000.ts?session=tv"));
    assert_eq!(first.status, 200, "{}", first.body);
    wait_for(running, &id, "the running host pauses the job", |j| {
        j["throttled"] == true
    });
    let paused = job(running, &id);
    let ready = paused["duration_seconds"].as_f64().unwrap();
    assert!(
        ready < 12.0,
        "paused a few seconds ahead of the viewer, not at the end: {paused}"
    );
    // The viewer moves on: the job goes on.
    let later = other.get(&format!("/hls/{id}/segment_00003.ts?session=tv"));
    assert_eq!(later.status, 200, "{}", later.body);
    wait_for(running, &id, "the job resumes", |j| {
        j["throttled"] == false || j["state"] == "complete"
    });
}
