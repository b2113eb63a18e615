//! How the usable CPUs are shared out: ONNX Runtime's threads in each job whose network runs on
//! the CPU, and the threads of the ffmpeg processes beside it, so that jobs running at once do
//! not fight over the same cores.

use std::fmt;

use crate::cpu_budget::UsableCpus;

/// The most threads `intra_op_threads`, `ffmpeg_threads` and `--threads` accept.
pub const MAX_THREADS: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPlan {
    pub cpus: UsableCpus,
    /// Pipelines whose network runs on the CPU at once.
    pub cpu_jobs: usize,
    /// ONNX Runtime's threads inside each such job's session.
    pub intra_op_threads: usize,
    /// As configured; 0: automatic (see [`ffmpeg_threads`]).
    configured_ffmpeg_threads: u32,
}

impl ThreadPlan {
    /// `intra_op_threads` and `ffmpeg_threads` as configured, 0 meaning automatic: the CPU jobs
    /// share the CPUs evenly, at least one thread each.
    pub fn new(
        cpus: UsableCpus,
        cpu_jobs: usize,
        intra_op_threads: u32,
        ffmpeg_threads: u32,
    ) -> ThreadPlan {
        let intra_op_threads = match intra_op_threads {
            0 => (cpus.count / cpu_jobs.max(1)).max(1),
            n => n as usize,
        };
        ThreadPlan {
            cpus,
            cpu_jobs,
            intra_op_threads,
            configured_ffmpeg_threads: ffmpeg_threads,
        }
    }

    /// More ONNX Runtime threads at once than CPUs: jobs would take cores from each other.
    pub fn oversubscribed(&self) -> bool {
        self.cpu_jobs * self.intra_op_threads > self.cpus.count
    }

    pub fn ffmpeg_threads(&self, network_on_cpu: bool) -> Option<u32> {
        ffmpeg_threads(self.configured_ffmpeg_threads, network_on_cpu)
    }
}

/// Threads of each ffmpeg (decoder and encoder) beside a pipeline's network, `None` leaving the
/// choice to ffmpeg: `configured` when set; else one beside a network on the CPU, which is the
/// bottleneck by far and whose threads ffmpeg's own pools would stall; else ffmpeg's choice.
pub fn ffmpeg_threads(configured: u32, network_on_cpu: bool) -> Option<u32> {
    match configured {
        0 => network_on_cpu.then_some(1),
        n => Some(n),
    }
}

/// "4 usable CPUs (cores); 2 CPU jobs at once, 2 ONNX Runtime threads each; ffmpeg: 1 thread
/// per decoder and encoder".
impl fmt::Display for ThreadPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let UsableCpus { count, limit } = self.cpus;
        write!(f, "{} ({limit}); ", counted(count, "usable CPU"))?;
        match self.cpu_jobs {
            0 => f.write_str("no network on the CPU")?,
            jobs => write!(
                f,
                "{} at once, {} each",
                counted(jobs, "CPU job"),
                counted(self.intra_op_threads, "ONNX Runtime thread")
            )?,
        }
        match self.ffmpeg_threads(self.cpu_jobs > 0) {
            Some(n) => write!(
                f,
                "; ffmpeg: {} per decoder and encoder",
                counted(n as usize, "thread")
            ),
            None => f.write_str("; ffmpeg chooses its threads"),
        }
    }
}

fn counted(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_budget::{within_quota, CpuLimit};

    fn cores(count: usize) -> UsableCpus {
        UsableCpus {
            count,
            limit: CpuLimit::Cores,
        }
    }

    #[test]
    fn cpu_jobs_share_the_cores() {
        let plan = ThreadPlan::new(cores(4), 2, 0, 0);
        assert_eq!(plan.intra_op_threads, 2);
        assert_eq!(plan.ffmpeg_threads(true), Some(1));
        assert!(!plan.oversubscribed());
        assert_eq!(ThreadPlan::new(cores(4), 1, 0, 0).intra_op_threads, 4);
        assert_eq!(ThreadPlan::new(cores(8), 3, 0, 0).intra_op_threads, 2);
    }

    #[test]
    fn one_core_still_gets_one_thread() {
        let plan = ThreadPlan::new(cores(1), 1, 0, 0);
        assert_eq!(plan.intra_op_threads, 1);
        assert!(!plan.oversubscribed());
        let crowded = ThreadPlan::new(cores(1), 2, 0, 0);
        assert_eq!(crowded.intra_op_threads, 1);
        assert!(crowded.oversubscribed());
    }

    #[test]
    fn a_fractional_quota_counts_as_the_whole_cpus_it_touches() {
        let cpus = within_quota(8, crate::cpu_budget::parse_cpu_max("150000 100000"));
        let plan = ThreadPlan::new(cpus, 1, 0, 0);
        assert_eq!(plan.intra_op_threads, 2);
        assert_eq!(
            plan.to_string(),
            "2 usable CPUs (cgroup CPU quota); 1 CPU job at once, 2 ONNX Runtime threads each; \
             ffmpeg: 1 thread per decoder and encoder"
        );
    }

    #[test]
    fn configured_counts_win() {
        let plan = ThreadPlan::new(cores(4), 2, 3, 2);
        assert_eq!(plan.intra_op_threads, 3);
        assert_eq!(plan.ffmpeg_threads(true), Some(2));
        assert_eq!(plan.ffmpeg_threads(false), Some(2));
        assert!(plan.oversubscribed());
        assert_eq!(ThreadPlan::new(cores(16), 0, 5, 0).intra_op_threads, 5);
    }

    #[test]
    fn beside_a_gpu_ffmpeg_chooses() {
        let plan = ThreadPlan::new(cores(8), 0, 0, 0);
        assert_eq!(plan.ffmpeg_threads(false), None);
        assert!(!plan.oversubscribed());
        assert_eq!(
            plan.to_string(),
            "8 usable CPUs (cores); no network on the CPU; ffmpeg chooses its threads"
        );
        assert_eq!(ffmpeg_threads(0, false), None);
        assert_eq!(ffmpeg_threads(0, true), Some(1));
        assert_eq!(ffmpeg_threads(4, false), Some(4));
    }
}
