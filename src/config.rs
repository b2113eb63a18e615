//! The one configuration of `liveup serve` and the operator commands: built-in defaults, then an
//! optional TOML file, then `LIVEUP_<KEY>` environment variables (which win). It is checked once,
//! at start, so a mistake stops the daemon with one precise line instead of surfacing mid-film.
//!
//! Adding a key takes a field on [`Config`] and its default in `Config::defaults`, plus a check in
//! `Config::validate` when serde's type alone does not say what is allowed. The file key, the
//! environment variable, the unknown-key check and the error messages all follow from the field.
//!
//! From the environment a value is read as the type of the key's default: an integer, a float,
//! `true`/`false`, a `:`-separated list of strings (like `PATH`), or else a string. A key whose
//! default is `None` is therefore read as a string.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::base_url::base_url;
use crate::cpu_budget::{self, UsableCpus};
use crate::ladder::{self, Rung};
use crate::path_map::PathMapping;
use crate::thread_plan::{ThreadPlan, MAX_THREADS};
use crate::upscale::{
    models, DeviceChoice, EngineOptions, FrameIo, OpenVinoTarget, Precision, DEFAULT_MODEL,
};

const ENV_PREFIX: &str = "LIVEUP_";

/// `LIVEUP_*` variables that other parts of liveup read themselves; they are not config keys and
/// pass without a warning. (`LIVEUP_ORT_LIBRARY` and `LIVEUP_MODELS_DIR` mean the same as the keys
/// `ort_library` and `models_dir`, so they are read as those keys.)
/// Keys read under an earlier name too: (earlier name, key).
const RENAMED_KEYS: &[(&str, &str)] = &[("segment_time", "segment_seconds")];

const NOT_CONFIG_ENV: &[&str] = &[
    "LIVEUP_LOG",
    "LIVEUP_FFMPEG",
    "LIVEUP_FFPROBE",
    "LIVEUP_DEPS_DIR",
    "LIVEUP_HLS_JS",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default = "Config::defaults")]
pub struct Config {
    /// Where the HTTP server listens; beyond loopback the webhook needs `token`.
    #[serde(deserialize_with = "socket_address")]
    pub bind: SocketAddr,
    /// Only films inside these folders may be upscaled: a webhook names a path, and without this
    /// fence it could name any file on the machine. Empty refuses every trigger.
    pub media_roots: Vec<PathBuf>,
    pub hls_root: PathBuf,
    pub output_root: PathBuf,
    /// The base of the `hls_url`s handed to players, which reach liveup through whatever proxy or
    /// host name the operator set up; stored without a trailing slash. Not set: derived from `bind`.
    pub public_url: String,
    /// Where liveup's routes start (`/liveup`: `/liveup/hls/…`, `/liveup/plugin/…`), so that it
    /// can sit under a path of Jellyfin's own site; stored without a trailing slash. Empty: `/`.
    pub base_path: String,
    pub token: Option<String>,
    /// Needed to turn the item id of a Jellyfin webhook into a file path.
    pub jellyfin_url: Option<String>,
    pub jellyfin_api_key: Option<String>,
    pub model: String,
    /// Several hosts sharing one library: their jobs in this PostgreSQL database
    /// (`postgres://user@host/db`). Not set: this host alone, its jobs in job.json files.
    pub database_url: Option<String>,
    /// How long a host holds a job without renewing its lease before another host takes it over.
    pub lease_seconds: u64,
    /// This host's name among the hosts sharing a database; empty: `<hostname>:<port>`.
    pub host_id: String,
    /// While `model` cannot keep up with a viewer, the live stream is made with this one (e.g.
    /// `lanczos`) and the final file still with `model`. Not set: the viewer is told when the
    /// upscaled version will be ready instead.
    pub live_fallback_model: Option<String>,
    #[serde(with = "via_string")]
    pub device: DeviceChoice,
    pub segment_seconds: u32,
    pub max_jobs: usize,
    /// Library folders whose new films are upscaled without waiting for someone to press play.
    pub watch_dirs: Vec<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub tile_size: u32,
    /// How long a request for a segment not made yet waits before a 503 (under hls.js's 10 s
    /// time-to-first-byte limit).
    pub segment_wait_seconds: u64,
    /// A segment asked for further than this ahead of the encoder restarts it there (as
    /// Jellyfin's own transcoder does).
    pub jit_restart_seconds: u64,
    /// A watched job pauses while this far ahead of the furthest segment any viewer asked for.
    pub throttle_ahead_seconds: u64,
    /// A viewer with no request for this long is gone.
    pub session_timeout_seconds: u64,
    /// Run `liveup cleanup`'s policy every this many seconds inside the daemon (0: never).
    pub cleanup_interval_seconds: u64,
    /// Below this much free space where jobs write, no job starts and running ones pause until
    /// space returns, so a filling disk never turns into a string of failed jobs (0: off).
    pub min_free_space_mb: u64,
    /// Jellyfin's folders and the same folders in liveup's file system (`/media:/mnt/media`),
    /// for the paths that come from Jellyfin. In the environment: pairs separated by `;`.
    pub path_map: Vec<PathMapping>,
    /// Ladders of renditions by kind of client (`phone = ["720p:3000", "480p:1400"]`). A rung
    /// below the model's output is made from the upscaled film when a client asks for it.
    /// In the environment: `phone=720p:3000,480p:1400;tv=…`.
    pub profiles: BTreeMap<String, Vec<Rung>>,
    /// The profile of a master playlist request that names none. Empty: such a request gets
    /// the upscaled rung and the lower rungs other clients had made.
    pub default_profile: String,
    /// How long the lock on a job's rung generation (in its job.json) holds without being
    /// renewed, before another run may take the generation over.
    pub variant_lock_seconds: u64,
    /// The ladder's segments (master.m3u8 and stream.mpd): `fmp4` (CMAF, one track per file,
    /// shared by HLS and DASH) or `ts` (MPEG-TS, HLS only).
    #[serde(with = "via_string")]
    pub segment_format: SegmentFormat,
    /// Several GPUs (`["cuda:0", "cuda:1"]`): `jobs_per_device` runs on each at a time, a new
    /// run on the least busy one. Empty: `max_jobs` runs on `device`. In the environment:
    /// `cuda:0;cuda:1`.
    pub devices: Vec<String>,
    pub jobs_per_device: usize,
    /// TensorRT's engines and timing cache (built once per model, GPU and size range).
    pub cache_dir: PathBuf,
    /// The network's arithmetic: `auto` (fp16 on CUDA, fp32 on the CPU), `fp32` or `fp16`.
    #[serde(with = "via_string")]
    pub precision: Precision,
    /// How frames cross into the network: `auto` (as bytes on a GPU, as floats on the CPU),
    /// `float` or `uint8`.
    #[serde(with = "via_string")]
    pub frame_io: FrameIo,
    /// Frames the network works on at once, each on its own session (uint8 frames only); 0:
    /// two on a GPU, one on the CPU.
    pub frames_in_flight: u32,
    /// ONNX Runtime's threads in each job whose network runs on the CPU; 0: the usable CPUs
    /// shared evenly between the CPU jobs that run at once.
    pub intra_op_threads: u32,
    /// Threads of each ffmpeg (decoder and encoder); 0: one beside a network on the CPU,
    /// ffmpeg's own choice beside a GPU.
    pub ffmpeg_threads: u32,
    /// The upscaled rung's video encoder: `auto` (NVENC when the network runs on an NVIDIA GPU
    /// and ffmpeg has it, else libx264), `libx264`, `h264_nvenc` or `hevc_nvenc`.
    pub encoder: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFormat {
    Fmp4,
    Ts,
}

impl std::str::FromStr for SegmentFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<SegmentFormat, String> {
        match text {
            "fmp4" => Ok(SegmentFormat::Fmp4),
            "ts" => Ok(SegmentFormat::Ts),
            _ => Err(format!("must be \"fmp4\" or \"ts\", got {text:?}")),
        }
    }
}

impl fmt::Display for SegmentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SegmentFormat::Fmp4 => "fmp4",
            SegmentFormat::Ts => "ts",
        })
    }
}

impl Config {
    /// Before validation: relative paths, and `public_url` empty until derived from `bind`.
    fn defaults() -> Config {
        Config {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8765)),
            media_roots: Vec::new(),
            hls_root: PathBuf::from("./liveup-data/hls"),
            output_root: PathBuf::from("./liveup-data/output"),
            public_url: String::new(),
            base_path: String::new(),
            token: None,
            jellyfin_url: None,
            jellyfin_api_key: None,
            model: DEFAULT_MODEL.to_string(),
            live_fallback_model: None,
            database_url: None,
            lease_seconds: 30,
            host_id: String::new(),
            device: DeviceChoice::Auto,
            segment_seconds: 6,
            max_jobs: 1,
            watch_dirs: Vec::new(),
            ort_library: None,
            models_dir: None,
            tile_size: EngineOptions::default().tile_size,
            segment_wait_seconds: 8,
            jit_restart_seconds: 24,
            throttle_ahead_seconds: 30,
            session_timeout_seconds: 600,
            cleanup_interval_seconds: 0,
            min_free_space_mb: 1024,
            path_map: Vec::new(),
            profiles: ladder::default_profiles(),
            default_profile: String::new(),
            variant_lock_seconds: 600,
            segment_format: SegmentFormat::Fmp4,
            encoder: "auto".to_string(),
            devices: Vec::new(),
            jobs_per_device: 1,
            cache_dir: PathBuf::from("./liveup-data/cache"),
            precision: Precision::Auto,
            frame_io: FrameIo::Auto,
            frames_in_flight: 0,
            intra_op_threads: 0,
            ffmpeg_threads: 0,
        }
    }

    /// Reads `file` (if any) and this process's environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let text = file
            .map(|path| {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            })
            .transpose()?;
        let source_name = file.map_or_else(String::new, |path| path.display().to_string());
        // A variable that is not UTF-8 cannot be a config key; a value that is not UTF-8 is kept
        // lossily so that it fails validation by name instead of vanishing.
        let env = std::env::vars_os().filter_map(|(name, value)| {
            Some((
                name.into_string().ok()?,
                value.to_string_lossy().into_owned(),
            ))
        });
        Config::from_parts(text.as_deref(), &source_name, env)
    }

    /// Like [`Config::load`], with the file's text and the environment given, so tests need not
    /// touch the process's environment. `source_name` names the file in error messages.
    /// Directories are still created and paths canonicalised.
    pub fn from_parts(
        toml_text: Option<&str>,
        source_name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let keys = keys();
        let mut table = toml::Table::new();
        let mut origins = Origins::default();

        if let Some(text) = toml_text {
            table =
                toml::from_str(text).map_err(|error| syntax_error(&error, text, source_name))?;
            for (old, key) in RENAMED_KEYS {
                let Some(value) = table.remove(*old) else {
                    continue;
                };
                if table.contains_key(*key) {
                    return Err(ConfigError::Invalid {
                        key: key.to_string(),
                        origin: Source::File(source_name.to_string()),
                        message: format!("given twice, also as `{old}` (its earlier name)"),
                    });
                }
                table.insert(key.to_string(), value);
            }
            if let Some(key) = table.keys().find(|key| !keys.contains(&key.as_str())) {
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    source_name: source_name.to_string(),
                    known: keys.join(", "),
                });
            }
            for key in table.keys() {
                origins.set(key, Source::File(source_name.to_string()));
            }
        }

        let kinds = toml::Table::try_from(Config::defaults())
            .expect("the defaults are representable in TOML");
        for (name, text) in env {
            let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let renamed = RENAMED_KEYS
                .iter()
                .find(|(old, _)| old.to_ascii_uppercase() == suffix)
                .map(|(_, key)| key);
            let current = keys.iter().find(|key| key.to_ascii_uppercase() == suffix);
            let Some(key) = current.or(renamed) else {
                if !NOT_CONFIG_ENV.contains(&name.as_str()) {
                    tracing::warn!("{name} is not a liveup setting; ignored");
                }
                continue;
            };
            origins.set(key, Source::Env(name.clone()));
            let value =
                env_value(key, kinds.get(*key), &text).map_err(|m| origins.invalid(key, m))?;
            table.insert(key.to_string(), value);
        }

        let mut config = deserialize(table, &origins)?;
        config.validate(&origins)?;
        Ok(config)
    }

    /// Checks what serde's types cannot say, and settles paths and URLs into their stored form.
    /// Filesystem work comes last, so that a rejected configuration creates no folders.
    fn validate(&mut self, origins: &Origins) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| origins.invalid(key, message);

        if !(1..=60).contains(&self.segment_seconds) {
            let got = self.segment_seconds;
            return Err(invalid(
                "segment_seconds",
                format!("must be 1 to 60 seconds, got {got}"),
            ));
        }
        if self.max_jobs == 0 {
            return Err(invalid("max_jobs", "must be at least 1, got 0".to_string()));
        }
        if !(1..=60).contains(&self.segment_wait_seconds) {
            let got = self.segment_wait_seconds;
            return Err(invalid(
                "segment_wait_seconds",
                format!("must be 1 to 60 seconds, got {got}"),
            ));
        }
        if self.session_timeout_seconds == 0 {
            return Err(invalid(
                "session_timeout_seconds",
                "must be at least 1 second".to_string(),
            ));
        }
        models::find(&self.model).map_err(|e| invalid("model", e.to_string()))?;
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid(
                    "database_url",
                    "must be a PostgreSQL URL (postgres://user@host/database)".to_string(),
                ));
            }
        }
        if self.database_url.is_some() && self.bind.port() == 0 && self.host_id.is_empty() {
            return Err(invalid(
                "host_id",
                "must be set when bind's port is chosen at start (0) and database_url is set"
                    .to_string(),
            ));
        }
        if !(2..=3600).contains(&self.lease_seconds) {
            let got = self.lease_seconds;
            return Err(invalid(
                "lease_seconds",
                format!("must be 2 to 3600 seconds, got {got}"),
            ));
        }
        if let Some(fallback) = &self.live_fallback_model {
            models::find(fallback).map_err(|e| invalid("live_fallback_model", e.to_string()))?;
        }
        ladder::check_profiles(&self.profiles).map_err(|m| invalid("profiles", m))?;
        if !self.default_profile.is_empty() && !self.profiles.contains_key(&self.default_profile) {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            return Err(invalid(
                "default_profile",
                format!(
                    "{:?} is not one of the profiles ({})",
                    self.default_profile,
                    known.join(", ")
                ),
            ));
        }
        if let Some(twice) = self
            .devices
            .iter()
            .enumerate()
            .find(|(i, d)| self.devices[..*i].contains(d))
        {
            return Err(invalid("devices", format!("{:?} is named twice", twice.1)));
        }
        for device in &self.devices {
            let parsed: DeviceChoice = device.parse().map_err(|m| invalid("devices", m))?;
            if parsed == DeviceChoice::Auto {
                return Err(invalid(
                    "devices",
                    "name each device (cpu, cuda:N), not auto".to_string(),
                ));
            }
        }
        if self.jobs_per_device == 0 {
            return Err(invalid(
                "jobs_per_device",
                "must be at least 1, got 0".to_string(),
            ));
        }
        for (key, threads) in [
            ("intra_op_threads", self.intra_op_threads),
            ("ffmpeg_threads", self.ffmpeg_threads),
        ] {
            if threads > MAX_THREADS {
                return Err(invalid(
                    key,
                    format!("must be 0 (automatic) to {MAX_THREADS}, got {threads}"),
                ));
            }
        }
        let encoders = crate::pipeline::ENCODERS;
        if self.encoder != "auto" && !encoders.contains(&self.encoder.as_str()) {
            return Err(invalid(
                "encoder",
                format!("{:?}: use auto, {}", self.encoder, encoders.join(", ")),
            ));
        }
        if self.variant_lock_seconds < 10 {
            return Err(invalid(
                "variant_lock_seconds",
                format!(
                    "must be at least 10 seconds, got {}",
                    self.variant_lock_seconds
                ),
            ));
        }
        self.base_path = base_path(&self.base_path).map_err(|m| invalid("base_path", m))?;
        self.public_url = if origins.given("public_url") {
            base_url(&self.public_url).map_err(|m| invalid("public_url", m))?
        } else {
            default_public_url(self.bind) + &self.base_path
        };
        if let Some(url) = &self.jellyfin_url {
            self.jellyfin_url = Some(base_url(url).map_err(|m| invalid("jellyfin_url", m))?);
        }
        for (key, value) in [
            ("token", &self.token),
            ("jellyfin_api_key", &self.jellyfin_api_key),
            ("live_fallback_model", &self.live_fallback_model),
            ("database_url", &self.database_url),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(invalid(key, "must not be empty".to_string()));
            }
        }
        match (&self.jellyfin_url, &self.jellyfin_api_key) {
            (Some(_), None) => {
                return Err(ConfigError::Incomplete {
                    set: "jellyfin_url",
                    missing: "jellyfin_api_key",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Incomplete {
                    set: "jellyfin_api_key",
                    missing: "jellyfin_url",
                })
            }
            _ => {}
        }

        self.media_roots =
            existing_dirs(&self.media_roots).map_err(|m| invalid("media_roots", m))?;
        self.watch_dirs = existing_dirs(&self.watch_dirs).map_err(|m| invalid("watch_dirs", m))?;
        self.hls_root = created_dir(&self.hls_root).map_err(|m| invalid("hls_root", m))?;
        self.output_root = created_dir(&self.output_root).map_err(|m| invalid("output_root", m))?;
        self.cache_dir = std::path::absolute(&self.cache_dir)
            .map_err(|e| invalid("cache_dir", e.to_string()))?;
        Ok(())
    }

    /// Anyone who can reach a non-loopback address could otherwise start jobs on this machine.
    /// This host's name among the hosts sharing a database.
    pub fn host_id(&self) -> String {
        if !self.host_id.is_empty() {
            return self.host_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        format!("{host}:{}", self.bind.port())
    }

    pub fn requires_token(&self) -> bool {
        !self.bind.ip().to_canonical().is_loopback()
    }

    /// The devices runs go to, and how many at a time on each.
    pub fn slots(&self) -> (Vec<DeviceChoice>, usize) {
        if self.devices.is_empty() {
            return (vec![self.device], self.max_jobs);
        }
        let devices = self
            .devices
            .iter()
            .map(|d| d.parse().expect("checked at load"))
            .collect();
        (devices, self.jobs_per_device)
    }

    /// Pipelines whose network may run on the CPU at once: those on `cpu`, and on `auto`
    /// unless `resolved` (what `device` came to: "CPU", "CUDA:0 fp16", "ffmpeg") is not the CPU.
    pub fn cpu_jobs(&self, resolved: Option<&str>) -> usize {
        let (devices, per_device) = self.slots();
        let on_cpu = |device: &&DeviceChoice| match device {
            DeviceChoice::Cpu | DeviceChoice::OpenVino(OpenVinoTarget::Cpu) => true,
            DeviceChoice::Auto => resolved.is_none_or(crate::upscale::runs_on_cpu),
            _ => false,
        };
        devices.iter().filter(on_cpu).count() * per_device
    }

    pub fn thread_plan(&self, cpus: UsableCpus, resolved: Option<&str>) -> ThreadPlan {
        ThreadPlan::new(
            cpus,
            self.cpu_jobs(resolved),
            self.intra_op_threads,
            self.ffmpeg_threads,
        )
    }

    pub fn engine_options(&self) -> EngineOptions {
        let plan = self.thread_plan(cpu_budget::usable_cpus(), None);
        EngineOptions {
            device: self.device,
            ort_library: self.ort_library.clone(),
            models_dir: self.models_dir.clone(),
            tile_size: self.tile_size,
            cache_dir: Some(self.cache_dir.clone()),
            precision: self.precision,
            frames: self.frame_io,
            in_flight: self.frames_in_flight,
            intra_threads: plan.intra_op_threads,
            ..EngineOptions::default()
        }
    }
}

/// Where a key's value came from, so that an error sends the operator to the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    /// The config file, by the name given to [`Config::from_parts`].
    File(String),
    /// The environment variable's name.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("(the default)"),
            Source::File(name) => write!(f, "in {name}"),
            Source::Env(name) => write!(f, "from {name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}:{line}:{column}: not valid TOML: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unknown key `{key}` in {source_name} (known keys: {known})")]
    UnknownKey {
        key: String,
        source_name: String,
        known: String,
    },
    #[error("invalid `{key}` {origin}: {message}")]
    Invalid {
        key: String,
        origin: Source,
        message: String,
    },
    #[error("`{set}` is set but `{missing}` is not: set both or neither")]
    Incomplete {
        set: &'static str,
        missing: &'static str,
    },
}

#[derive(Default)]
struct Origins(BTreeMap<String, Source>);

impl Origins {
    fn set(&mut self, key: &str, source: Source) {
        self.0.insert(key.to_string(), source);
    }

    fn given(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            origin: self.0.get(key).cloned().unwrap_or(Source::Default),
            message,
        }
    }
}

/// The keys [`Config`] accepts: the field names serde's derive hands to `deserialize_struct`, so
/// this list can never disagree with the struct.
fn keys() -> &'static [&'static str] {
    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for FieldNames<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom(
                "only a struct's field names are recorded",
            ))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field names recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = Config::deserialize(FieldNames(&mut fields));
    fields
}

/// An environment variable's text as a TOML value of the same type as the key's default.
/// Keys whose items hold `:` themselves: their environment lists are `;`-separated.
const SEMICOLON_LISTS: &[&str] = &["path_map", "devices"];

fn env_value(key: &str, default: Option<&toml::Value>, text: &str) -> Result<toml::Value, String> {
    use toml::Value;
    Ok(match default {
        Some(Value::Integer(_)) => Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| format!("expected an integer, got {text:?}"))?,
        ),
        Some(Value::Float(_)) => Value::Float(
            text.trim()
                .parse()
                .map_err(|_| format!("expected a number, got {text:?}"))?,
        ),
        Some(Value::Boolean(_)) => Value::Boolean(match text.trim() {
            "true" => true,
            "false" => false,
            _ => return Err(format!("expected true or false, got {text:?}")),
        }),
        Some(Value::Array(_)) => Value::Array(
            text.split(if SEMICOLON_LISTS.contains(&key) {
                ';'
            } else {
                ':'
            })
            .filter(|item| !item.is_empty())
            .map(|item| Value::String(item.to_string()))
            .collect(),
        ),
        Some(Value::Table(_)) => Value::Table(
            ladder::parse_env(text)?
                .into_iter()
                .map(|(name, rungs)| {
                    let rungs = rungs.into_iter().map(Value::String).collect();
                    (name, Value::Array(rungs))
                })
                .collect(),
        ),
        _ => Value::String(text.to_string()),
    })
}

/// Serde's messages do not say which key was wrong; a failing whole is retried key by key to
/// find the culprit.
fn deserialize(table: toml::Table, origins: &Origins) -> Result<Config, ConfigError> {
    Config::deserialize(table.clone()).map_err(|whole| {
        table
            .into_iter()
            .find_map(|(key, value)| {
                let alone = toml::Table::from_iter([(key.clone(), value)]);
                Config::deserialize(alone)
                    .err()
                    .map(|error| origins.invalid(&key, error.message().to_string()))
            })
            .unwrap_or_else(|| origins.invalid("(configuration)", whole.message().to_string()))
    })
}

fn syntax_error(error: &toml::de::Error, text: &str, source_name: &str) -> ConfigError {
    let offset = error.span().map_or(0, |span| span.start);
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    ConfigError::Syntax {
        source_name: source_name.to_string(),
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        message: error
            .message()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `SocketAddr`'s own error ("invalid socket address syntax") does not show the expected form,
/// and host names are a likely mistake.
fn socket_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "expected IP:PORT such as 127.0.0.1:8765 or [::]:8765 (no host names), got {text:?}"
        ))
    })
}

/// For types that already read and write themselves as text (`FromStr` + `Display`).
mod via_string {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// `/a/b` from `a/b/`, `/a/b` or `/a//b/`; empty for `/` or nothing. Each segment is kept to
/// what needs no escaping in a URL path.
fn base_path(text: &str) -> Result<String, String> {
    let mut path = String::new();
    for segment in text.split('/').filter(|s| !s.is_empty()) {
        let plain = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !plain || segment == "." || segment == ".." {
            return Err(format!(
                "{segment:?} is not a plain path segment (letters, digits, - . _ ~): {text:?}"
            ));
        }
        path.push('/');
        path.push_str(segment);
    }
    Ok(path)
}

/// Players on this machine can reach a wildcard bind through loopback.
fn default_public_url(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

fn existing_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    paths
        .iter()
        .map(|path| {
            let canonical = path
                .canonicalize()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if canonical.is_dir() {
                Ok(canonical)
            } else {
                Err(format!("{} is not a directory", path.display()))
            }
        })
        .collect()
}

fn created_dir(path: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(path)
        .and_then(|()| path.canonicalize())
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    /// Data folders inside `dir`, so tests never create `./liveup-data`, plus `vars`.
    fn env(dir: &TempDir, vars: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![
            data_dir(dir, "LIVEUP_HLS_ROOT", "hls"),
            data_dir(dir, "LIVEUP_OUTPUT_ROOT", "out"),
        ];
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    fn data_dir(dir: &TempDir, var: &str, name: &str) -> (String, String) {
        let path = dir.path().join(name);
        (var.to_string(), path.to_str().unwrap().to_string())
    }

    fn from_env(dir: &TempDir, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_parts(None, "", env(dir, vars))
    }

    fn from_file(dir: &TempDir, text: &str) -> Result<Config, ConfigError> {
        Config::from_parts(Some(text), "/etc/liveup.toml", env(dir, &[]))
    }

    fn subdir(dir: &TempDir, name: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path.canonicalize().unwrap()
    }

    #[test]
    fn loading_nothing_gives_the_defaults() {
        let dir = TempDir::new().unwrap();
        let config = from_env(&dir, &[]).unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(config.bind, "127.0.0.1:8765".parse().unwrap());
        assert_eq!(config.public_url, "http://127.0.0.1:8765");
        assert!(config.media_roots.is_empty());
        assert!(config.watch_dirs.is_empty());
        assert_eq!(config.hls_root, canonical.join("hls"));
        assert_eq!(config.output_root, canonical.join("out"));
        assert!(config.hls_root.is_dir() && config.output_root.is_dir());
        assert_eq!(config.token, None);
        assert_eq!(config.jellyfin_url, None);
        assert_eq!(config.model, DEFAULT_MODEL);
        assert_eq!(config.device, DeviceChoice::Auto);
        assert_eq!(config.segment_seconds, 6);
        assert_eq!(config.max_jobs, 1);
        assert_eq!(config.tile_size, 720);
        assert!(!config.requires_token());

        let raw = Config::defaults();
        assert_eq!(raw.hls_root, Path::new("./liveup-data/hls"));
        assert_eq!(raw.output_root, Path::new("./liveup-data/output"));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = TempDir::new().unwrap();
        let (films, shows) = (subdir(&dir, "films"), subdir(&dir, "shows"));
        let file = format!(
            "segment_seconds = 4\nmodel = \"lanczos\"\nmax_jobs = 3\ndevice = \"cpu\"\n\
             media_roots = [{films:?}]\ntoken = \"from-file\"\n"
        );
        let vars = [
            ("LIVEUP_SEGMENT_SECONDS", "10"),
            ("LIVEUP_MEDIA_ROOTS", shows.to_str().unwrap()),
            ("LIVEUP_DEVICE", "cuda:1"),
            ("LIVEUP_BIND", "0.0.0.0:9000"),
            ("LIVEUP_PUBLIC_URL", "https://films.example/liveup/"),
        ];
        let config = Config::from_parts(Some(&file), "liveup.toml", env(&dir, &vars)).unwrap();
        assert_eq!(config.segment_seconds, 10);
        assert_eq!(config.media_roots, vec![shows]);
        assert_eq!(config.device, DeviceChoice::Cuda(1));
        assert_eq!(config.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.public_url, "https://films.example/liveup");
        assert_eq!(config.model, "lanczos");
        assert_eq!(config.max_jobs, 3);
        assert_eq!(config.token.as_deref(), Some("from-file"));
    }

    #[test]
    fn the_segment_length_is_read_under_its_earlier_name_too() {
        let dir = TempDir::new().unwrap();
        assert_eq!(
            from_file(&dir, "segment_time = 4\n")
                .unwrap()
                .segment_seconds,
            4
        );
        let vars = [("LIVEUP_SEGMENT_TIME", "3")];
        assert_eq!(from_env(&dir, &vars).unwrap().segment_seconds, 3);
        let error = from_file(&dir, "segment_time = 4\nsegment_seconds = 6\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`segment_seconds`"), "{message}");
        assert!(message.contains("`segment_time`"), "{message}");
    }

    #[test]
    fn jellyfins_folders_map_to_liveups_from_the_file_and_the_environment() {
        let dir = TempDir::new().unwrap();
        let config = from_file(
            &dir,
            "path_map = [\"/media:/mnt/media\", \"/tv:/srv/tv\"]\n",
        )
        .unwrap();
        let shown: Vec<String> = config.path_map.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, ["/media:/mnt/media", "/tv:/srv/tv"]);
        let vars = [("LIVEUP_PATH_MAP", "/media:/mnt/media;/tv:/srv/tv")];
        assert_eq!(from_env(&dir, &vars).unwrap().path_map, config.path_map);
        let file = Source::File("/etc/liveup.toml".to_string());
        assert_invalid(
            from_file(&dir, "path_map = [\"/media\"]\n"),
            "path_map",
            &file,
        );
    }

    #[test]
    fn the_base_path_is_kept_plain_and_joins_the_default_public_url() {
        let dir = TempDir::new().unwrap();
        for (given, kept) in [
            ("liveup/", "/liveup"),
            ("/a//b/", "/a/b"),
            ("/", ""),
            ("", ""),
        ] {
            let config = from_file(&dir, &format!("base_path = {given:?}\n")).unwrap();
            assert_eq!(config.base_path, kept, "{given}");
            assert_eq!(config.public_url, format!("http://127.0.0.1:8765{kept}"));
        }
        let file = Source::File("/etc/liveup.toml".to_string());
        for bad in ["/live up", "/../x", "/a?b", "/é"] {
            assert_invalid(
                from_file(&dir, &format!("base_path = {bad:?}\n")),
                "base_path",
                &file,
            );
        }
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let dir = TempDir::new().unwrap();
        let error = from_file(&dir, "segment_seconds = 6\nsegmnt_time = 4\n").unwrap_err();
        assert!(matches!(&error, ConfigError::UnknownKey { key, .. } if key == "segmnt_time"));
        let message = error.to_string();
        assert!(message.contains("`segmnt_time`"), "{message}");
        assert!(message.contains("/etc/liveup.toml"), "{message}");
        assert!(message.contains("segment_seconds"), "{message}");
    }

    #[test]
    fn other_liveup_variables_are_ignored() {
        let dir = TempDir::new().unwrap();
        let vars = [
            ("LIVEUP_LOG", "debug"),
            ("LIVEUP_FFMPEG", "/nowhere/ffmpeg"),
            ("LIVEUP_FFPROBE", "/nowhere/ffprobe"),
            ("LIVEUP_DEPS_DIR", "/nowhere"),
            ("LIVEUP_NOT_A_SETTING", "x"),
            ("LIVEUP_segment_seconds", "0"),
            ("SEGMENT_TIME", "0"),
        ];
        assert_eq!(from_env(&dir, &vars).unwrap().segment_seconds, 6);
    }

    #[test]
    fn engine_paths_come_from_their_variables() {
        let dir = TempDir::new().unwrap();
        let vars = [
            ("LIVEUP_ORT_LIBRARY", "/opt/ort/libonnxruntime.so"),
            ("LIVEUP_MODELS_DIR", "/opt/models"),
            ("LIVEUP_TILE_SIZE", "0"),
            ("LIVEUP_DEVICE", "cpu"),
        ];
        let options = from_env(&dir, &vars).unwrap().engine_options();
        assert_eq!(
            options.ort_library.as_deref(),
            Some(Path::new("/opt/ort/libonnxruntime.so"))
        );
        assert_eq!(
            options.models_dir.as_deref(),
            Some(Path::new("/opt/models"))
        );
        assert_eq!(options.tile_size, 0);
        assert_eq!(options.device, DeviceChoice::Cpu);
        assert_eq!(options.tile_overlap, EngineOptions::default().tile_overlap);
    }

    #[test]
    fn thread_counts_come_from_the_file_and_the_environment() {
        let dir = TempDir::new().unwrap();
        let config = from_env(&dir, &[]).unwrap();
        assert_eq!((config.intra_op_threads, config.ffmpeg_threads), (0, 0));
        let file = "intra_op_threads = 2\nffmpeg_threads = 3\nmax_jobs = 2\n";
        let vars = env(&dir, &[("LIVEUP_INTRA_OP_THREADS", "5")]);
        let config = Config::from_parts(Some(file), "f.toml", vars).unwrap();
        assert_eq!((config.intra_op_threads, config.ffmpeg_threads), (5, 3));
        assert_eq!(config.engine_options().intra_threads, 5);
        let message = from_file(&dir, "intra_op_threads = 1025\n")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("0 (automatic) to 1024, got 1025"),
            "{message}"
        );
    }

    #[test]
    fn cpu_jobs_share_the_usable_cpus() {
        let dir = TempDir::new().unwrap();
        let four = UsableCpus {
            count: 4,
            limit: cpu_budget::CpuLimit::Cores,
        };
        let cpu = from_file(&dir, "device = \"cpu\"\nmax_jobs = 2\n").unwrap();
        assert_eq!(cpu.cpu_jobs(None), 2);
        assert_eq!(cpu.thread_plan(four, None).intra_op_threads, 2);
        let auto = from_file(&dir, "max_jobs = 2\n").unwrap();
        assert_eq!(auto.cpu_jobs(None), 2);
        assert_eq!(auto.cpu_jobs(Some("CPU")), 2);
        assert_eq!(auto.cpu_jobs(Some("CUDA:0 fp16 uint8")), 0);
        assert_eq!(auto.cpu_jobs(Some("ffmpeg")), 0);
        assert_eq!(auto.cpu_jobs(Some("OpenVINO:CPU bf16")), 2);
        let openvino = from_file(&dir, "device = \"openvino\"\nmax_jobs = 2\n").unwrap();
        assert_eq!(openvino.cpu_jobs(None), 2);
        let intel_gpu = from_file(&dir, "device = \"openvino:gpu\"\nmax_jobs = 2\n").unwrap();
        assert_eq!(intel_gpu.cpu_jobs(None), 0);
        let gpu = from_file(&dir, "device = \"cuda:0\"\nmax_jobs = 3\n").unwrap();
        assert_eq!(gpu.cpu_jobs(None), 0);
        assert_eq!(gpu.thread_plan(four, None).ffmpeg_threads(false), None);
        let mixed = "devices = [\"cuda:0\", \"cpu\"]\njobs_per_device = 2\n";
        assert_eq!(from_file(&dir, mixed).unwrap().cpu_jobs(None), 2);
    }

    fn assert_invalid(result: Result<Config, ConfigError>, want_key: &str, want_origin: &Source) {
        let error = result.expect_err("should be rejected");
        let message = error.to_string();
        match &error {
            ConfigError::Invalid { key, origin, .. } => {
                assert_eq!((key.as_str(), origin), (want_key, want_origin), "{message}");
            }
            other => panic!("expected an invalid {want_key}, got: {other}"),
        }
        assert!(message.contains(&format!("`{want_key}`")), "{message}");
        assert!(!message.contains('\n'), "{message}");
        if let Source::Env(var) | Source::File(var) = want_origin {
            assert!(message.contains(var.as_str()), "{message}");
        }
    }

    #[test]
    fn a_bad_environment_value_names_its_key_and_variable() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("missing");
        let missing = missing.to_str().unwrap();
        // The partner of a jellyfin key, so that the pair rule does not hide the value check.
        let url = ("LIVEUP_JELLYFIN_URL", "http://jellyfin:8096");
        let api_key = ("LIVEUP_JELLYFIN_API_KEY", "secret");
        let cases = [
            (("LIVEUP_SEGMENT_SECONDS", "0"), None),
            (("LIVEUP_SEGMENT_SECONDS", "61"), None),
            (("LIVEUP_SEGMENT_SECONDS", "six"), None),
            (("LIVEUP_SEGMENT_SECONDS", "-1"), None),
            (("LIVEUP_MAX_JOBS", "0"), None),
            (("LIVEUP_INTRA_OP_THREADS", "1025"), None),
            (("LIVEUP_INTRA_OP_THREADS", "all"), None),
            (("LIVEUP_FFMPEG_THREADS", "-1"), None),
            (("LIVEUP_TILE_SIZE", "big"), None),
            (("LIVEUP_BIND", "localhost:8765"), None),
            (("LIVEUP_BIND", "127.0.0.1"), None),
            (("LIVEUP_DEVICE", "gpu"), None),
            (("LIVEUP_MODEL", "no-such-model"), None),
            (("LIVEUP_LIVE_FALLBACK_MODEL", "bicubic-please"), None),
            (("LIVEUP_LIVE_FALLBACK_MODEL", ""), None),
            (("LIVEUP_DATABASE_URL", "mysql://db/library"), None),
            (("LIVEUP_LEASE_SECONDS", "1"), None),
            (("LIVEUP_MEDIA_ROOTS", missing), None),
            (("LIVEUP_WATCH_DIRS", missing), None),
            (("LIVEUP_PUBLIC_URL", "ftp://films.example"), None),
            (("LIVEUP_PUBLIC_URL", "https://"), None),
            (("LIVEUP_PUBLIC_URL", "http://films.example/?a=b"), None),
            (("LIVEUP_TOKEN", ""), None),
            (("LIVEUP_JELLYFIN_URL", "jellyfin:8096"), Some(api_key)),
            (("LIVEUP_JELLYFIN_API_KEY", " "), Some(url)),
        ];
        for ((var, value), partner) in cases {
            let key = var.strip_prefix("LIVEUP_").unwrap().to_lowercase();
            let vars: Vec<_> = [(var, value)].into_iter().chain(partner).collect();
            assert_invalid(from_env(&dir, &vars), &key, &Source::Env(var.to_string()));
        }
    }

    #[test]
    fn a_bad_file_value_names_its_key_and_the_file() {
        let dir = TempDir::new().unwrap();
        let file = Source::File("/etc/liveup.toml".to_string());
        for (text, key) in [
            ("segment_seconds = \"6\"", "segment_seconds"),
            ("segment_seconds = 0", "segment_seconds"),
            ("max_jobs = -2", "max_jobs"),
            ("bind = 8765", "bind"),
            ("media_roots = \"/srv\"", "media_roots"),
            ("watch_dirs = [\"/no/such/folder\"]", "watch_dirs"),
            ("token = \"\"", "token"),
            ("device = \"tpu\"", "device"),
            ("intra_op_threads = 100000", "intra_op_threads"),
            ("ffmpeg_threads = 2000", "ffmpeg_threads"),
        ] {
            assert_invalid(from_file(&dir, text), key, &file);
        }
    }

    #[test]
    fn a_folder_that_cannot_be_created_names_its_key() {
        let dir = TempDir::new().unwrap();
        let blocker = dir.path().join("a-file");
        std::fs::write(&blocker, "").unwrap();
        let text = format!("hls_root = {:?}", blocker.join("hls"));
        let vars = [data_dir(&dir, "LIVEUP_OUTPUT_ROOT", "out")];
        let result = Config::from_parts(Some(&text), "f.toml", vars);
        assert_invalid(result, "hls_root", &Source::File("f.toml".to_string()));
    }

    #[test]
    fn lists_from_the_environment_are_colon_separated() {
        let dir = TempDir::new().unwrap();
        let (a, b) = (subdir(&dir, "a"), subdir(&dir, "b"));
        // Relative to the working directory and through a `..`, to see canonicalisation.
        let indirect = dir.path().join("a/../b");
        let list = format!(":{}::{}:", a.display(), indirect.display());
        let config = from_env(&dir, &[("LIVEUP_WATCH_DIRS", &list)]).unwrap();
        assert_eq!(config.watch_dirs, vec![a, b]);

        let file = format!("media_roots = [{:?}]", dir.path());
        let vars = env(&dir, &[("LIVEUP_MEDIA_ROOTS", "")]);
        let config = Config::from_parts(Some(&file), "f.toml", vars).unwrap();
        assert!(config.media_roots.is_empty());
    }

    #[test]
    fn jellyfin_url_and_api_key_come_together() {
        let dir = TempDir::new().unwrap();
        for (set, missing) in [
            ("LIVEUP_JELLYFIN_URL", "jellyfin_api_key"),
            ("LIVEUP_JELLYFIN_API_KEY", "jellyfin_url"),
        ] {
            let value = "http://jellyfin:8096";
            let error = from_env(&dir, &[(set, value)]).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, ConfigError::Incomplete { .. }), "{message}");
            assert!(message.contains("jellyfin_url"), "{message}");
            assert!(message.contains("jellyfin_api_key"), "{message}");
            assert!(
                message.contains(&format!("`{missing}` is not")),
                "{message}"
            );
        }
        let both = [
            ("LIVEUP_JELLYFIN_URL", "https://media.example/jellyfin/"),
            ("LIVEUP_JELLYFIN_API_KEY", "0123abcd"),
        ];
        let config = from_env(&dir, &both).unwrap();
        assert_eq!(
            config.jellyfin_url.as_deref(),
            Some("https://media.example/jellyfin")
        );
        assert_eq!(config.jellyfin_api_key.as_deref(), Some("0123abcd"));
    }

    #[test]
    fn a_token_is_required_beyond_loopback() {
        let dir = TempDir::new().unwrap();
        for (bind, required) in [
            ("127.0.0.1:8765", false),
            ("127.0.0.2:8765", false),
            ("[::1]:8765", false),
            ("[::ffff:127.0.0.1]:8765", false),
            ("0.0.0.0:8765", true),
            ("[::]:8765", true),
            ("192.168.1.20:8765", true),
            ("[fd00::20]:8765", true),
        ] {
            let config = from_env(&dir, &[("LIVEUP_BIND", bind)]).unwrap();
            assert_eq!(config.requires_token(), required, "{bind}");
        }
    }

    #[test]
    fn the_default_public_url_is_reachable_locally() {
        let dir = TempDir::new().unwrap();
        for (bind, url) in [
            ("0.0.0.0:9000", "http://127.0.0.1:9000"),
            ("[::]:9000", "http://[::1]:9000"),
            ("192.168.1.20:80", "http://192.168.1.20:80"),
        ] {
            let config = from_env(&dir, &[("LIVEUP_BIND", bind)]).unwrap();
            assert_eq!(config.public_url, url);
        }
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let dir = TempDir::new().unwrap();
        let error = from_file(&dir, "max_jobs = 2\nsegment_seconds = = 6\n").unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, ConfigError::Syntax { line: 2, .. }),
            "{message}"
        );
        assert!(message.starts_with("/etc/liveup.toml:2:"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("absent.toml");
        let error = Config::load(Some(&path)).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(error.to_string().contains(path.to_str().unwrap()));
    }

    #[test]
    fn every_key_can_be_written_in_the_file() {
        let dir = TempDir::new().unwrap();
        let root = subdir(&dir, "films");
        let file = format!(
            "bind = \"127.0.0.1:9999\"\nmedia_roots = [{root:?}]\nhls_root = {hls:?}\n\
             output_root = {out:?}\npublic_url = \"http://films.lan:9999/\"\ntoken = \"t\"\n\
             jellyfin_url = \"http://jf:8096\"\njellyfin_api_key = \"k\"\nmodel = \"lanczos\"\n\
             device = \"cuda\"\nsegment_seconds = 60\nmax_jobs = 2\nwatch_dirs = [{root:?}]\n\
             ort_library = \"/opt/libonnxruntime.so\"\nmodels_dir = \"/opt/models\"\n\
             tile_size = 512\nsegment_wait_seconds = 5\njit_restart_seconds = 12\n\
             throttle_ahead_seconds = 40\nsession_timeout_seconds = 60\n\
             cleanup_interval_seconds = 3600\nmin_free_space_mb = 256\n\
             path_map = [\"/media:/mnt/media\"]\nbase_path = \"/liveup\"\n\
             default_profile = \"phone\"\nvariant_lock_seconds = 60\n\
             profiles = {{ phone = [\"480p:1400\", \"360p:800\"] }}\nsegment_format = \"ts\"\n\
             encoder = \"hevc_nvenc\"\ndevices = [\"cuda:0\", \"cuda:1\"]\njobs_per_device = 2\n\
             cache_dir = \"/var/cache/liveup\"\nprecision = \"fp16\"\nframe_io = \"uint8\"\nframes_in_flight = 3\n\
             intra_op_threads = 4\nffmpeg_threads = 2\nlive_fallback_model = \"lanczos\"\n\
             database_url = \"postgres://liveup@db/library\"\nlease_seconds = 10\nhost_id = \"box-1\"\n",
            hls = dir.path().join("h"),
            out = dir.path().join("o"),
        );
        let config = Config::from_parts(Some(&file), "f.toml", Vec::new()).unwrap();
        let table: toml::Table = toml::from_str(&file).unwrap();
        assert_eq!(table.len(), keys().len(), "the test should set every key");
        assert_eq!(config.public_url, "http://films.lan:9999");
        assert_eq!(config.device, DeviceChoice::Cuda(0));
        assert_eq!(
            (
                config.segment_wait_seconds,
                config.jit_restart_seconds,
                config.throttle_ahead_seconds,
                config.session_timeout_seconds
            ),
            (5, 12, 40, 60)
        );
        assert_eq!(config.watch_dirs, vec![root]);
        assert_eq!(config.tile_size, 512);
        assert_eq!(config.cleanup_interval_seconds, 3600);
        assert_eq!(config.min_free_space_mb, 256);
        assert_eq!(config.default_profile, "phone");
        assert_eq!(config.variant_lock_seconds, 60);
        assert_eq!(config.segment_format, SegmentFormat::Ts);
        assert_eq!(config.encoder, "hevc_nvenc");
        assert_eq!(config.cache_dir, PathBuf::from("/var/cache/liveup"));
        assert_eq!(config.precision, Precision::Fp16);
        assert_eq!(config.frame_io, FrameIo::Uint8);
        assert_eq!(config.frames_in_flight, 3);
        assert_eq!(config.live_fallback_model.as_deref(), Some("lanczos"));
        assert_eq!(
            config.database_url.as_deref(),
            Some("postgres://liveup@db/library")
        );
        assert_eq!(
            (config.lease_seconds, config.host_id()),
            (10, "box-1".to_string())
        );
        assert_eq!((config.intra_op_threads, config.ffmpeg_threads), (4, 2));
        assert_eq!(
            config.slots(),
            (vec![DeviceChoice::Cuda(0), DeviceChoice::Cuda(1)], 2)
        );
        assert_eq!(
            config.profiles["phone"],
            vec![
                Rung {
                    height: 480,
                    kbps: 1400
                },
                Rung {
                    height: 360,
                    kbps: 800
                }
            ]
        );
    }

    #[test]
    fn bad_profiles_stop_start_up_naming_them() {
        let dir = TempDir::new().unwrap();
        for (text, key, want) in [
            (
                "[profiles]\nphone = [\"480:1400\"]\n",
                "profiles",
                "HEIGHTp:KBPS",
            ),
            ("[profiles]\nphone = [\"481p:1400\"]\n", "profiles", "even"),
            ("[profiles]\nphone = []\n", "profiles", "no rungs"),
            (
                "default_profile = \"fridge\"\n",
                "default_profile",
                "\"fridge\"",
            ),
            (
                "variant_lock_seconds = 1\n",
                "variant_lock_seconds",
                "at least 10",
            ),
            (
                "segment_format = \"mkv\"\n",
                "segment_format",
                "\"fmp4\" or \"ts\"",
            ),
            ("encoder = \"x265\"\n", "encoder", "use auto, libx264"),
            ("devices = [\"gpu0\"]\n", "devices", "unknown device"),
            ("devices = [\"auto\"]\n", "devices", "not auto"),
            (
                "devices = [\"cuda:0\", \"cuda:0\"]\n",
                "devices",
                "named twice",
            ),
            ("jobs_per_device = 0\n", "jobs_per_device", "at least 1"),
        ] {
            let message = from_file(&dir, text).unwrap_err().to_string();
            assert!(message.contains(key), "{text}: {message}");
            assert!(message.contains(want), "{text}: {message}");
        }
        let vars = [(
            "LIVEUP_PROFILES",
            "phone=720p:3000,480p:1400;tv=2160p:16000",
        )];
        let config = from_env(&dir, &vars).unwrap();
        assert_eq!(config.profiles.len(), 2);
        assert_eq!(config.profiles["phone"][1].height, 480);
        let vars = [("LIVEUP_PROFILES", "phone=720p")];
        let message = from_env(&dir, &vars).unwrap_err().to_string();
        assert!(message.contains("LIVEUP_PROFILES"), "{message}");
    }
}
