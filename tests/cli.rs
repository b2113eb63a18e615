//! The `liveup` binary as a user runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{facts, Clip};

fn liveup() -> Command {
    Command::new(env!("CARGO_BIN_EXE_liveup"))
}

/// `liveup upscale SOURCE` on the CPU, quietly, writing beside the source: the final file's
/// path and how the run ended.
fn upscale_beside(source: &Path, extra: &[&str]) -> (PathBuf, std::process::Output) {
    let dir = source.parent().unwrap();
    let output = dir.join("clip.upscaled.ts");
    let out = liveup()
        .arg("upscale")
        .arg(source)
        .arg("--output")
        .arg(&output)
        .arg("--hls-dir")
        .arg(dir.join("hls"))
        .args(["--device", "cpu", "--quiet"])
        .args(extra)
        .output()
        .unwrap();
    (output, out)
}

#[test]
fn upscale_prints_a_summary_and_writes_the_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = Clip {
        seconds: 1.0,
        ..Clip::default()
    }
    .make(&dir.path().join("clip.mp4"));
    let (output, out) = upscale_beside(&source, &["--segment-seconds", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("upscaled 10 frames (96x54 -> 192x108"),
        "{stdout}"
    );
    assert!(stdout.contains(" fps"), "{stdout}");
    assert_eq!(facts(&output).width, 192);
}

#[test]
fn upscale_on_the_cpu_takes_the_threads_asked_for_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let source = Clip {
        seconds: 0.4,
        audio: false,
        ..Clip::default()
    }
    .make(&dir.path().join("clip.mp4"));
    let (output, out) = upscale_beside(&source, &["--threads", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "1 CPU job at once, 1 ONNX Runtime thread each; ffmpeg: 1 thread per decoder and encoder"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("usable CPU"), "{stderr}");
    assert_eq!(facts(&output).width, 192);

    let refused = liveup()
        .args(["upscale", "in.mkv", "--output", "o.ts", "--hls-dir", "h"])
        .args(["--threads", "5000"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn a_missing_onnx_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let source = Clip::default().make(&dir.path().join("clip.mp4"));
    let out = liveup()
        .env(
            "ORT_DYLIB_PATH",
            dir.path().join("no-such-libonnxruntime.so"),
        )
        .arg("upscale")
        .arg(&source)
        .arg("--output")
        .arg(dir.path().join("out.ts"))
        .arg("--hls-dir")
        .arg(dir.path().join("hls"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ONNX Runtime library not found"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("out.ts").exists());
}

#[test]
fn an_unknown_model_lists_the_known_ones() {
    let out = liveup()
        .args([
            "upscale",
            "in.mkv",
            "--output",
            "o.ts",
            "--hls-dir",
            "h",
            "--model",
            "waifu9000",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown model \"waifu9000\""), "{stderr}");
    assert!(stderr.contains("lanczos"), "{stderr}");
}

#[test]
fn a_bad_device_name_is_refused_by_the_parser() {
    let out = liveup()
        .args([
            "upscale",
            "in.mkv",
            "--output",
            "o.ts",
            "--hls-dir",
            "h",
            "--device",
            "gpu",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("use auto, cpu, cuda, cuda:N, tensorrt, tensorrt:N, openvino or openvino:gpu"));
}

#[test]
fn the_lanczos_model_needs_no_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let source = Clip {
        seconds: 1.0,
        audio: false,
        ..Clip::default()
    }
    .make(&dir.path().join("clip.mp4"));
    let output = dir.path().join("lanczos.ts");
    let out = liveup()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .arg("upscale")
        .arg(&source)
        .arg("--output")
        .arg(&output)
        .arg("--hls-dir")
        .arg(dir.path().join("hls"))
        .args(["--model", "lanczos", "--segment-seconds", "1", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = facts(&output);
    assert_eq!((out.width, out.height, out.frames), (192, 108, 10));
}

/// `liveup doctor` on this machine (no NVIDIA GPU): every prerequisite with ✓ or ✗ and a fix for
/// each ✗; exit 0 for the CPU, non-zero when the configuration asks for a GPU it cannot have,
/// and the same checks as JSON.
#[test]
fn doctor_says_what_this_machine_has_and_whether_the_device_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = |device: &str| {
        let path = dir.path().join(format!("{device}.toml"));
        std::fs::write(
            &path,
            format!(
                "hls_root = {:?}\noutput_root = {:?}\ndevice = \"{device}\"\n",
                dir.path().join("hls"),
                dir.path().join("out")
            ),
        )
        .unwrap();
        path
    };
    let run = |config: &std::path::Path, extra: &[&str]| {
        liveup()
            .arg("doctor")
            .arg("--config")
            .arg(config)
            .args(extra)
            .output()
            .unwrap()
    };

    let cpu = run(&config("cpu"), &[]);
    let text = String::from_utf8_lossy(&cpu.stdout);
    assert!(
        cpu.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    for line in [
        "✓ ffmpeg: 5.",
        "✓ encoder libx264: in this ffmpeg",
        "✓ ONNX Runtime: 1.31.1; execution providers: CPU",
        "✓ OpenVINO: 2026.4.1; devices: CPU (",
        "✓ model: realesr-animevideov3-x2 at ",
        "✓ hls_root: ",
        "✓ device: cpu runs realesr-animevideov3-x2 on CPU",
        "✓ encoder: auto → libx264",
        "✓ threads: ",
        "1 CPU job at once",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    let gpu_here = !text.contains("✗ NVIDIA driver");
    for line in text.lines().filter(|l| l.starts_with('✗')) {
        let next = text.lines().skip_while(|l| *l != line).nth(1).unwrap_or("");
        assert!(next.starts_with("    fix: "), "{line} has no fix");
    }

    // CUDA: the exit status is the device's verdict, on any machine; without a GPU it fails.
    let cuda = run(&config("cuda"), &[]);
    let text = String::from_utf8_lossy(&cuda.stdout);
    let cuda_ran = text.contains("✓ device: cuda:0 runs realesr-animevideov3-x2");
    assert_eq!(cuda.status.success(), cuda_ran, "{text}");
    assert!(gpu_here || !cuda_ran, "no GPU, yet CUDA ran: {text}");
    if !cuda_ran {
        assert!(
            text.contains("✗ device: cuda:0 cannot run realesr-animevideov3-x2"),
            "{text}"
        );
        assert!(
            String::from_utf8_lossy(&cuda.stderr).contains("cannot run as configured"),
            "{}",
            String::from_utf8_lossy(&cuda.stderr)
        );
    }

    // OpenVINO on the CPU: scripts/setup installs it, so it runs here.
    let openvino = run(&config("openvino"), &[]);
    let text = String::from_utf8_lossy(&openvino.stdout);
    assert!(openvino.status.success(), "{text}");
    assert!(
        text.contains("✓ device: openvino runs realesr-animevideov3-x2 on OpenVINO:CPU"),
        "{text}"
    );

    // NVENC named: refused, saying why, unless there is an NVIDIA GPU.
    let path = dir.path().join("nvenc.toml");
    let text = std::fs::read_to_string(config("cpu")).unwrap() + "encoder = \"h264_nvenc\"\n";
    std::fs::write(&path, text).unwrap();
    let nvenc = run(&path, &[]);
    let text = String::from_utf8_lossy(&nvenc.stdout);
    assert_eq!(nvenc.status.success(), gpu_here, "{text}");
    if !gpu_here {
        assert!(
            text.contains("✗ encoder: encoder h264_nvenc needs an NVIDIA GPU: no NVIDIA driver"),
            "{text}"
        );
    }

    let json = run(&config("cpu"), &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let device = checks.iter().find(|c| c["name"] == "device").unwrap();
    assert_eq!(device["ok"], true);
    assert_eq!(device["required"], true);
    assert!(checks.iter().any(|c| c["name"] == "cuDNN"));
    let threads = checks.iter().find(|c| c["name"] == "threads").unwrap();
    assert_eq!(threads["ok"], true, "{threads}");
    assert!(
        threads["detail"]
            .as_str()
            .unwrap()
            .contains("ffmpeg: 1 thread per decoder and encoder"),
        "{threads}"
    );
}

/// TensorRT asked for on a machine without it: a clear error naming the device and why.
#[test]
fn tensorrt_without_a_gpu_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let source = Clip {
        seconds: 1.0,
        ..Clip::default()
    }
    .make(&dir.path().join("clip.mp4"));
    let out = liveup()
        .arg("upscale")
        .arg(&source)
        .arg("--output")
        .arg(dir.path().join("clip.upscaled.ts"))
        .arg("--hls-dir")
        .arg(dir.path().join("hls"))
        .args(["--device", "tensorrt", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match liveup::upscale::gpu::cuda_device_count() {
        Err(_) => {
            assert!(!out.status.success(), "{stderr}");
            assert!(
                stderr.contains("device tensorrt:0 unavailable: no NVIDIA driver"),
                "{stderr}"
            );
        }
        // With a GPU it runs, or says which part of TensorRT is missing.
        Ok(_) => assert!(
            out.status.success() || stderr.contains("device tensorrt:0 unavailable"),
            "{stderr}"
        ),
    }
}
