//! Which device runs the network. CUDA is detected through `cudarc` with dynamic loading, so the
//! binary builds and runs on machines without any NVIDIA software.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// TensorRT, else CUDA, when a usable GPU is found and the provider registers; else CPU
    /// (with a log line saying why).
    Auto,
    Cpu,
    Cuda(u32),
    /// ONNX Runtime's TensorRT provider on GPU N (fp16, engines cached), CUDA for what it
    /// leaves.
    TensorRt(u32),
    /// OpenVINO, Intel's runtime, on the CPU (bf16 where the CPU has it) or an Intel GPU.
    OpenVino(OpenVinoTarget),
}

/// The OpenVINO device a network runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenVinoTarget {
    Cpu,
    /// An Intel integrated or discrete GPU (OpenVINO's "GPU" device).
    Gpu,
}

impl OpenVinoTarget {
    /// OpenVINO's name for the device.
    pub fn name(self) -> &'static str {
        match self {
            OpenVinoTarget::Cpu => "CPU",
            OpenVinoTarget::Gpu => "GPU",
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<DeviceChoice, String> {
        match text {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            "tensorrt" => Ok(DeviceChoice::TensorRt(0)),
            "openvino" | "openvino:cpu" => Ok(DeviceChoice::OpenVino(OpenVinoTarget::Cpu)),
            "openvino:gpu" => Ok(DeviceChoice::OpenVino(OpenVinoTarget::Gpu)),
            _ => {
                let numbered =
                    |prefix: &str| text.strip_prefix(prefix).and_then(|n| n.parse().ok());
                numbered("cuda:")
                    .map(DeviceChoice::Cuda)
                    .or_else(|| numbered("tensorrt:").map(DeviceChoice::TensorRt))
                    .ok_or_else(|| {
                        format!(
                            "unknown device {text:?}: use auto, cpu, cuda, cuda:N, tensorrt, \
                             tensorrt:N, openvino or openvino:gpu"
                        )
                    })
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceChoice::TensorRt(n) => write!(f, "tensorrt:{n}"),
            DeviceChoice::OpenVino(OpenVinoTarget::Cpu) => f.write_str("openvino"),
            DeviceChoice::OpenVino(OpenVinoTarget::Gpu) => f.write_str("openvino:gpu"),
        }
    }
}

/// The number of CUDA devices, or why there are none usable.
pub fn cuda_device_count() -> Result<u32, String> {
    // cudarc panics on first use when libcuda is absent; ask first.
    let present = unsafe { cudarc::driver::sys::is_culib_present() };
    if !present {
        return Err("no NVIDIA driver (libcuda) on this machine".to_string());
    }
    cudarc::driver::result::init().map_err(|e| format!("CUDA driver failed to start: {e:?}"))?;
    let count = cudarc::driver::result::device::get_count()
        .map_err(|e| format!("CUDA device count failed: {e:?}"))?;
    u32::try_from(count)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "the NVIDIA driver reports no CUDA device".to_string())
}

/// One GPU as the driver describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDevice {
    pub ordinal: u32,
    pub name: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gpus {
    /// The CUDA version the driver supports, e.g. "12.8".
    pub driver: String,
    pub devices: Vec<GpuDevice>,
}

/// The driver's CUDA version and every GPU with its free memory, or why there is none.
pub fn describe() -> Result<Gpus, String> {
    let count = cuda_device_count()?;
    let mut version: std::ffi::c_int = 0;
    // SAFETY: libcuda is present and initialised (cuda_device_count checked both).
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
    let mut devices = Vec::new();
    for ordinal in 0..count {
        let context = cudarc::driver::CudaContext::new(ordinal as usize)
            .map_err(|e| format!("cuda:{ordinal} does not start: {e:?}"))?;
        let name = context.name().unwrap_or_else(|_| "unnamed GPU".into());
        let (free, total) = context
            .mem_get_info()
            .map_err(|e| format!("cuda:{ordinal}: memory unknown: {e:?}"))?;
        devices.push(GpuDevice {
            ordinal,
            name,
            free_bytes: free as u64,
            total_bytes: total as u64,
        });
    }
    Ok(Gpus {
        driver: format!("{}.{}", version / 1000, (version % 1000) / 10),
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert_eq!("tensorrt".parse(), Ok(DeviceChoice::TensorRt(0)));
        assert_eq!("tensorrt:1".parse(), Ok(DeviceChoice::TensorRt(1)));
        assert_eq!(DeviceChoice::TensorRt(1).to_string(), "tensorrt:1");
        assert!("tensorrt:x".parse::<DeviceChoice>().is_err());
        assert!("gpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn parses_openvino_and_says_what_else_there_is() {
        let cpu = DeviceChoice::OpenVino(OpenVinoTarget::Cpu);
        let gpu = DeviceChoice::OpenVino(OpenVinoTarget::Gpu);
        assert_eq!("openvino".parse(), Ok(cpu));
        assert_eq!("openvino:cpu".parse(), Ok(cpu));
        assert_eq!("openvino:gpu".parse(), Ok(gpu));
        assert_eq!(cpu.to_string(), "openvino");
        assert_eq!(gpu.to_string().parse(), Ok(gpu));
        let error = "openvino:npu".parse::<DeviceChoice>().unwrap_err();
        assert!(error.contains("openvino or openvino:gpu"), "{error}");
        assert!("OpenVINO".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn detection_answers_without_panicking_on_machines_without_cuda() {
        match cuda_device_count() {
            Ok(n) => assert!(n > 0),
            Err(why) => assert!(!why.is_empty()),
        }
        match describe() {
            Ok(gpus) => assert!(!gpus.devices.is_empty()),
            Err(why) => assert!(!why.is_empty()),
        }
    }
}
