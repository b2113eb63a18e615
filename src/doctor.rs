//! What this machine has for liveup, and whether the configured device can work: ffmpeg and
//! its encoders and hardware decoders, ONNX Runtime and its execution providers, OpenVINO and
//! its devices, the NVIDIA driver and each GPU, the CUDA libraries ONNX Runtime's CUDA and
//! TensorRT providers load, the models, write access where jobs write, and how the usable CPUs
//! are shared out between threads. `liveup doctor` prints it, `serve` logs it at start and
//! `/health` carries it.

use std::ffi::CString;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::cpu_budget;
use crate::cpuinfo;
use crate::media::{process, Tools};
use crate::pipeline::EncoderSettings;
use crate::upscale::{self, gpu, models, openvino_runtime, runtime, DeviceChoice, ModelKind};

/// One prerequisite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do about a failed check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// liveup cannot work as configured without it (a GPU on a CPU machine is not).
    pub required: bool,
}

impl Check {
    fn good(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            ok: true,
            detail: detail.into(),
            fix: None,
            required: false,
        }
    }

    fn bad(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            required: false,
        }
    }

    fn required(mut self) -> Check {
        self.required = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether something the configuration needs is missing.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.required && !c.ok)
    }

    /// One line per check: `✓ name: detail`, or `✗ name: detail` and an indented fix.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let mark = if check.ok { '✓' } else { '✗' };
            out.push_str(&format!("{mark} {}: {}\n", check.name, check.detail));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("    fix: {fix}\n"));
            }
        }
        out
    }
}

/// The libraries ONNX Runtime 1.31's CUDA provider (CUDA 13, cuDNN 9) and TensorRT provider
/// load: (name, file, what ships it).
const CUDA_LIBRARIES: [(&str, &str, &str); 6] = [
    ("CUDA runtime", "libcudart.so.13", "onnxruntime-gpu[cuda]"),
    ("cuBLAS", "libcublas.so.13", "onnxruntime-gpu[cuda]"),
    ("cuBLASLt", "libcublasLt.so.13", "onnxruntime-gpu[cuda]"),
    ("cuRAND", "libcurand.so.10", "onnxruntime-gpu[cuda]"),
    ("cuDNN", "libcudnn.so.9", "onnxruntime-gpu[cudnn]"),
    ("TensorRT", "libnvinfer.so.10", "tensorrt-cu13"),
];

/// Looks at everything; `device` is the configured device's verdict when the caller already
/// built the upscaler (`serve`), else it is built here.
pub fn examine(config: &Config, tools: &Tools, device: Option<Result<String, String>>) -> Report {
    let mut checks = Vec::new();
    checks.extend(ffmpeg_checks(tools));
    let spec = models::find(&config.model);
    let onnx = spec.as_ref().is_ok_and(|s| s.kind == ModelKind::Onnx);
    checks.push(onnx_runtime_check(config, onnx));
    checks.push(openvino_check(
        onnx && matches!(config.device, DeviceChoice::OpenVino(_)),
    ));
    checks.extend(gpu_checks());
    for (name, file, wheel) in CUDA_LIBRARIES {
        checks.push(library_check(name, file, wheel));
    }
    checks.push(match &spec {
        Ok(spec) if spec.kind == ModelKind::Scaler => {
            Check::good("model", format!("{} (ffmpeg's scaler, no file)", spec.name)).required()
        }
        Ok(spec) => match models::onnx_file(spec, config.models_dir.as_deref()) {
            Ok(path) => Check::good("model", format!("{} at {}", spec.name, path.display())),
            Err(e) => Check::bad(
                "model",
                e.to_string(),
                "run scripts/setup (it converts the models)",
            ),
        }
        .required(),
        Err(e) => Check::bad("model", e.to_string(), "set `model` to a known one").required(),
    });
    for (name, dir) in [
        ("hls_root", &config.hls_root),
        ("output_root", &config.output_root),
    ] {
        checks.push(writable(name, dir).required());
    }
    for root in &config.media_roots {
        checks.push(readable("media root", root));
    }
    let device = device.unwrap_or_else(|| {
        upscale::build(&config.model, &config.engine_options())
            .map(|u| u.device())
            .map_err(|e| e.to_string())
    });
    let verdict = device.clone();
    checks.push(
        match device {
            Ok(found) => Check::good(
                "device",
                format!("{} runs {} on {found}", config.device, config.model),
            ),
            Err(error) => Check::bad(
                "device",
                format!("{} cannot run {}: {error}", config.device, config.model),
                "fix what is marked ✗ above, or set `device = \"cpu\"` (or auto)",
            ),
        }
        .required(),
    );
    checks.push(threads_check(config, verdict.as_deref().ok()));
    let mut report = Report { checks };
    if let Ok(found) = verdict {
        let check = match encoder(config, &found, &report) {
            Ok(chosen) => Check::good(
                "encoder",
                format!(
                    "{} → {}{}",
                    config.encoder,
                    chosen.codec,
                    chosen
                        .hwaccel
                        .map(|h| format!(", decoding with -hwaccel {h}"))
                        .unwrap_or_default()
                ),
            ),
            Err(error) => Check::bad(
                "encoder",
                error,
                "set `encoder = \"auto\"`, or fix what is marked ✗ above",
            ),
        };
        report.checks.push(check.required());
    }
    report
}

/// The encoder `config.encoder` comes to with the network on `device`, from what `report`
/// found in ffmpeg and of the GPU.
pub fn encoder(config: &Config, device: &str, report: &Report) -> Result<EncoderSettings, String> {
    let found = |name: &str| report.checks.iter().any(|c| c.name == name && c.ok);
    let gpu = report
        .checks
        .iter()
        .find(|c| c.name == "NVIDIA driver")
        .filter(|c| !c.ok)
        .map_or(Ok(()), |c| Err(c.detail.clone()));
    let settings = EncoderSettings::choose(
        &config.encoder,
        device,
        |codec| found(&format!("encoder {codec}")),
        found("hwaccel cuda"),
        gpu,
    )?;
    Ok(EncoderSettings {
        ffmpeg_threads: config.ffmpeg_threads,
        ..settings
    })
}

/// How the usable CPUs are shared out, with the network on `device` (its verdict, when known).
fn threads_check(config: &Config, device: Option<&str>) -> Check {
    let plan = config.thread_plan(cpu_budget::usable_cpus(), device);
    if plan.oversubscribed() {
        Check::bad(
            "threads",
            format!(
                "{plan}; {} ONNX Runtime threads at once on {} CPUs",
                plan.cpu_jobs * plan.intra_op_threads,
                plan.cpus.count
            ),
            "lower max_jobs (or jobs_per_device) or intra_op_threads, so that jobs × threads fit",
        )
    } else {
        Check::good("threads", plan.to_string())
    }
}

fn ffmpeg_checks(tools: &Tools) -> Vec<Check> {
    let mut checks = Vec::new();
    match tools.ffmpeg_version() {
        Ok(version) if major(&version) >= 5 => checks.push(
            Check::good("ffmpeg", format!("{version} ({})", tools.ffmpeg.display())).required(),
        ),
        Ok(version) => checks.push(
            Check::bad(
                "ffmpeg",
                format!("{version}: older than 5.1"),
                "install ffmpeg 5.1 or later",
            )
            .required(),
        ),
        Err(e) => {
            checks.push(
                Check::bad(
                    "ffmpeg",
                    e.to_string(),
                    "apt-get install ffmpeg (or set LIVEUP_FFMPEG)",
                )
                .required(),
            );
            return checks;
        }
    }
    match tools.ffprobe_version() {
        Ok(version) => checks.push(Check::good("ffprobe", version).required()),
        Err(e) => checks.push(
            Check::bad(
                "ffprobe",
                e.to_string(),
                "apt-get install ffmpeg (or set LIVEUP_FFPROBE)",
            )
            .required(),
        ),
    }
    let listing = |flag: &str| {
        let mut command = std::process::Command::new(&tools.ffmpeg);
        command.args(["-hide_banner", flag]);
        process::output("ffmpeg", command)
            .map(|out| String::from_utf8_lossy(&out).into_owned())
            .unwrap_or_default()
    };
    let encoders = listing("-encoders");
    for (encoder, required) in [
        ("libx264", true),
        ("h264_nvenc", false),
        ("hevc_nvenc", false),
    ] {
        let has = encoders
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some(encoder));
        let check = if has {
            Check::good(&format!("encoder {encoder}"), "in this ffmpeg")
        } else if required {
            Check::bad(
                &format!("encoder {encoder}"),
                "not in this ffmpeg",
                "install an ffmpeg built with libx264 (Debian's is)",
            )
        } else {
            Check::bad(
                &format!("encoder {encoder}"),
                "not in this ffmpeg",
                "for NVENC on an NVIDIA GPU, an ffmpeg built with --enable-nvenc (Debian's is)",
            )
        };
        checks.push(if required { check.required() } else { check });
    }
    let hwaccels = listing("-hwaccels");
    checks.push(if hwaccels.lines().any(|l| l.trim() == "cuda") {
        Check::good("hwaccel cuda", "in this ffmpeg (NVDEC decoding)")
    } else {
        Check::bad(
            "hwaccel cuda",
            "not in this ffmpeg",
            "an ffmpeg built with --enable-cuvid/--enable-ffnvcodec (Debian's is)",
        )
    });
    checks
}

fn major(version: &str) -> u32 {
    version
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())
        .and_then(|part| part.parse().ok())
        .unwrap_or(0)
}

fn onnx_runtime_check(config: &Config, needed: bool) -> Check {
    let check = match runtime::environment(config.ort_library.as_deref()) {
        Ok(_) => {
            let version = runtime::version().unwrap_or_else(|| "unknown".into());
            let providers = runtime::providers();
            Check::good(
                "ONNX Runtime",
                format!("{version}; execution providers: {}", providers.join(", ")),
            )
        }
        Err(e) => Check::bad(
            "ONNX Runtime",
            e.to_string(),
            "run scripts/setup, or set ort_library / ORT_DYLIB_PATH",
        ),
    };
    if needed {
        check.required()
    } else {
        check
    }
}

/// OpenVINO's version, and the devices it lists with their names.
fn openvino_check(needed: bool) -> Check {
    let listed = openvino_runtime::core().and_then(|core| {
        let devices = openvino_runtime::devices(&core)?;
        let named: Vec<String> = devices
            .iter()
            .map(|device| {
                let full = core
                    .get_property(
                        &openvino::DeviceType::Other(device.as_str().into()),
                        &openvino::PropertyKey::DeviceFullName,
                    )
                    .unwrap_or_default();
                format!("{device} ({})", full.trim())
            })
            .collect();
        Ok(named)
    });
    let check = match listed {
        Ok(devices) => Check::good(
            "OpenVINO",
            format!(
                "{}; devices: {}; bf16 on this CPU: {}",
                openvino_runtime::version().unwrap_or_else(|| "unknown".into()),
                devices.join(", "),
                if cpuinfo::has_native_bf16() {
                    "yes"
                } else {
                    "no (fp32 or int8)"
                }
            ),
        ),
        Err(e) => Check::bad(
            "OpenVINO",
            e.to_string(),
            format!(
                "run scripts/setup (it installs the openvino wheel), or set {}",
                openvino_runtime::LIBRARY_ENV
            ),
        ),
    };
    if needed {
        check.required()
    } else {
        check
    }
}

fn gpu_checks() -> Vec<Check> {
    match gpu::describe() {
        Err(why) => vec![Check::bad(
            "NVIDIA driver",
            why,
            "for a GPU: install NVIDIA's driver (and, in a container, the NVIDIA Container Toolkit)",
        )],
        Ok(found) => {
            let mut checks = vec![Check::good(
                "NVIDIA driver",
                format!("CUDA {} driver API, {} GPU(s)", found.driver, found.devices.len()),
            )];
            for device in found.devices {
                checks.push(Check::good(
                    &format!("cuda:{}", device.ordinal),
                    format!(
                        "{}, {:.1} of {:.1} GiB free",
                        device.name,
                        device.free_bytes as f64 / (1u64 << 30) as f64,
                        device.total_bytes as f64 / (1u64 << 30) as f64
                    ),
                ));
            }
            checks
        }
    }
}

/// Whether the dynamic loader finds `file` (as ONNX Runtime's providers will look for it).
fn library_check(name: &str, file: &str, wheel: &str) -> Check {
    let c_name = CString::new(file).expect("no NUL in a library name");
    // SAFETY: dlopen with a valid C string; the handle is closed at once.
    let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    if handle.is_null() {
        Check::bad(
            name,
            format!("{file} not found by the loader"),
            format!(
                "for a GPU: scripts/setup installs it where an NVIDIA driver is (the {wheel} \
                 wheels from PyPI), or NVIDIA's package where the loader finds it"
            ),
        )
    } else {
        // SAFETY: the handle came from dlopen above.
        unsafe { libc::dlclose(handle) };
        Check::good(name, format!("{file} found"))
    }
}

fn writable(name: &str, dir: &Path) -> Check {
    let probe = dir.join(format!(".liveup-doctor-{}", std::process::id()));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&probe, b"x"));
    let _ = std::fs::remove_file(&probe);
    match written {
        Ok(()) => Check::good(name, format!("{} is writable", dir.display())),
        Err(e) => Check::bad(
            name,
            format!("cannot write in {}: {e}", dir.display()),
            "make it writable by liveup's user, or point the key elsewhere",
        ),
    }
}

fn readable(name: &str, dir: &Path) -> Check {
    match std::fs::read_dir(dir) {
        Ok(_) => Check::good(name, format!("{} is readable", dir.display())),
        Err(e) => Check::bad(
            name,
            format!("cannot read {}: {e}", dir.display()),
            "mount the library there, readable by liveup's user",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_by_their_first_number() {
        assert_eq!(major("5.1.9-0+deb12u1"), 5);
        assert_eq!(major("n7.1"), 7);
        assert_eq!(major("git-2024"), 2024);
        assert_eq!(major(""), 0);
    }

    #[test]
    fn a_report_fails_only_on_what_the_configuration_needs() {
        let mut report = Report {
            checks: vec![
                Check::good("ffmpeg", "5.1").required(),
                Check::bad("NVIDIA driver", "none", "install it"),
            ],
        };
        assert!(!report.failed());
        let text = report.render();
        assert!(text.contains("✓ ffmpeg: 5.1\n"), "{text}");
        assert!(
            text.contains("✗ NVIDIA driver: none\n    fix: install it\n"),
            "{text}"
        );
        report
            .checks
            .push(Check::bad("device", "cuda:0 cannot run", "x").required());
        assert!(report.failed());
    }

    #[test]
    fn a_library_the_loader_cannot_find_is_named() {
        let check = library_check("nothing", "libliveup-does-not-exist.so.1", "a-wheel");
        assert!(!check.ok);
        assert!(check.detail.contains("libliveup-does-not-exist.so.1"));
        assert!(check.fix.unwrap().contains("a-wheel"));
        assert!(library_check("libc", "libc.so.6", "none").ok);
    }
}
