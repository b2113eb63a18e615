//! `device = "auto"`'s choice between ONNX Runtime and OpenVINO on the CPU, remembered in a JSON
//! file: one entry per machine (CPU model and extensions, usable CPUs, threads), model, precision
//! and runtime versions, so that a start with the same key reuses it and any change measures
//! again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "cpu-runtime-choice.json";

/// OpenVINO is chosen only when it takes at most 1/1.1 of ONNX Runtime's time: a close race is
/// left to ONNX Runtime, the runtime every other device uses.
pub const CLEARLY_FASTER: f64 = 1.10;

/// What a choice holds for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceKey {
    /// `/proc/cpuinfo`'s "model name".
    pub cpu: String,
    /// Its vector extensions ([`cpuinfo::vector_extensions`](crate::cpuinfo::vector_extensions)).
    pub cpu_extensions: String,
    pub usable_cpus: usize,
    /// The network's threads.
    pub threads: usize,
    pub model: String,
    pub precision: String,
    pub onnx_runtime: String,
    pub openvino: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuRuntime {
    OnnxRuntime,
    OpenVino,
}

impl std::fmt::Display for CpuRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CpuRuntime::OnnxRuntime => "ONNX Runtime",
            CpuRuntime::OpenVino => "OpenVINO",
        })
    }
}

/// Milliseconds per run of the same small frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub onnx_runtime_ms: f64,
    pub openvino_ms: f64,
}

impl Timings {
    pub fn winner(&self) -> CpuRuntime {
        if self.onnx_runtime_ms >= self.openvino_ms * CLEARLY_FASTER {
            CpuRuntime::OpenVino
        } else {
            CpuRuntime::OnnxRuntime
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub key: ChoiceKey,
    pub runtime: CpuRuntime,
    pub timings: Timings,
}

/// The file in `cache_dir`, or in the system's temporary folder when none is configured.
pub fn file_in(cache_dir: Option<&Path>) -> PathBuf {
    cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join("liveup"))
        .join(FILE_NAME)
}

/// The choice for `key` and whether it was measured now: the one `file` holds, else what
/// `measure` finds, then added to `file`. A file that cannot be read counts as empty; one
/// that cannot be written is logged, and the choice stands for this run.
pub fn choose(
    file: &Path,
    key: &ChoiceKey,
    measure: impl FnOnce() -> Result<Timings, String>,
) -> Result<(Choice, bool), String> {
    let mut known: Vec<Choice> = std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if let Some(found) = known.iter().find(|c| c.key == *key) {
        return Ok((found.clone(), false));
    }
    let timings = measure()?;
    let choice = Choice {
        key: key.clone(),
        runtime: timings.winner(),
        timings,
    };
    known.push(choice.clone());
    if let Err(e) = write(file, &known) {
        tracing::warn!(
            "cannot remember the CPU runtime choice in {}: {e}",
            file.display()
        );
    }
    Ok((choice, true))
}

fn write(file: &Path, choices: &[Choice]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written beside, then renamed: another process starting at once reads one whole file.
    let staged = file.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&staged, serde_json::to_vec_pretty(choices)?)?;
    std::fs::rename(&staged, file)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn key(model: &str) -> ChoiceKey {
        ChoiceKey {
            cpu: "AMD EPYC".into(),
            cpu_extensions: "avx2 fma avx512f avx512_vnni avx512_bf16".into(),
            usable_cpus: 2,
            threads: 2,
            model: model.into(),
            precision: "auto".into(),
            onnx_runtime: "1.31.1".into(),
            openvino: "2026.4.1".into(),
        }
    }

    const OPENVINO_FASTER: Timings = Timings {
        onnx_runtime_ms: 300.0,
        openvino_ms: 120.0,
    };

    #[test]
    fn a_second_start_reuses_the_choice_and_a_changed_key_measures_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(Some(&dir.path().join("cache")));
        let measured = Cell::new(0);
        let measure = |timings: Timings| {
            let measured = &measured;
            move || {
                measured.set(measured.get() + 1);
                Ok(timings)
            }
        };
        let (first, fresh) = choose(&file, &key("x2"), measure(OPENVINO_FASTER)).unwrap();
        assert!(fresh);
        assert_eq!(first.runtime, CpuRuntime::OpenVino);
        assert_eq!(measured.get(), 1);

        let never = || -> Result<Timings, String> { panic!("measured although cached") };
        let (again, fresh) = choose(&file, &key("x2"), never).unwrap();
        assert!(!fresh);
        assert_eq!(again, first);

        let slower = Timings {
            onnx_runtime_ms: 100.0,
            openvino_ms: 95.0,
        };
        let mut other = key("x2");
        other.openvino = "2026.5.0".into();
        let (changed, fresh) = choose(&file, &other, measure(slower)).unwrap();
        assert!(fresh);
        assert_eq!(changed.runtime, CpuRuntime::OnnxRuntime);
        assert_eq!(measured.get(), 2);
        // Both keys are kept.
        assert_eq!(choose(&file, &key("x2"), never).unwrap().0, first);
        assert_eq!(choose(&file, &other, never).unwrap().0, changed);
    }

    #[test]
    fn an_unreadable_file_measures_and_a_failed_measurement_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(Some(dir.path()));
        std::fs::write(&file, "not json").unwrap();
        let failed = choose(&file, &key("x2"), || Err("OpenVINO declined".into()));
        assert_eq!(failed.unwrap_err(), "OpenVINO declined");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "not json");
        let (choice, fresh) = choose(&file, &key("x2"), || Ok(OPENVINO_FASTER)).unwrap();
        assert!(fresh && choice.runtime == CpuRuntime::OpenVino);
        let stored: Vec<Choice> =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(stored, vec![choice]);
    }

    #[test]
    fn openvino_must_be_clearly_faster() {
        let race = |onnx_runtime_ms, openvino_ms| {
            Timings {
                onnx_runtime_ms,
                openvino_ms,
            }
            .winner()
        };
        assert_eq!(race(111.0, 100.0), CpuRuntime::OpenVino);
        assert_eq!(race(109.0, 100.0), CpuRuntime::OnnxRuntime);
        assert_eq!(race(80.0, 100.0), CpuRuntime::OnnxRuntime);
    }
}
