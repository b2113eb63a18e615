//! How many CPUs liveup may keep busy: the cores it may be scheduled on, or fewer when a cgroup
//! quota (a container's `--cpus`) grants less CPU time than that.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where cgroup v2 is mounted, and where v1's `cpu` controller may be.
const CGROUP_V2_MOUNT: &str = "/sys/fs/cgroup";
const CGROUP_V1_CPU_MOUNTS: [&str; 2] = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsableCpus {
    pub count: usize,
    pub limit: CpuLimit,
}

/// What set [`UsableCpus::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuLimit {
    /// The cores this process may run on.
    Cores,
    /// The cgroup's CPU quota, rounded up to whole CPUs.
    CgroupQuota,
}

impl fmt::Display for CpuLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuLimit::Cores => "cores",
            CpuLimit::CgroupQuota => "cgroup CPU quota",
        })
    }
}

/// This process's usable CPUs, looked up now.
pub fn usable_cpus() -> UsableCpus {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    within_quota(cores, cgroup_quota(&own))
}

/// The fewer of `cores` and `quota`; a quota that allows as many is named as the limit, since
/// the standard library may already have counted it in `cores`.
pub fn within_quota(cores: usize, quota: Option<usize>) -> UsableCpus {
    match quota {
        Some(quota) if quota <= cores => UsableCpus {
            count: quota.max(1),
            limit: CpuLimit::CgroupQuota,
        },
        _ => UsableCpus {
            count: cores.max(1),
            limit: CpuLimit::Cores,
        },
    }
}

/// Whole CPUs granted by cgroup v2's `cpu.max` ("200000 100000"; "max 100000" is no quota).
pub fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?.parse().ok()?;
    let period = fields.next()?.parse().ok()?;
    whole_cpus(quota, period)
}

/// Whole CPUs granted by cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us` (a quota of
/// -1 is none).
pub fn parse_cfs_quota(quota: &str, period: &str) -> Option<usize> {
    whole_cpus(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

fn whole_cpus(quota: u64, period: u64) -> Option<usize> {
    (quota > 0 && period > 0).then(|| quota.div_ceil(period) as usize)
}

/// This process's cgroup in each hierarchy that can cap CPU time, from `/proc/self/cgroup`:
/// v2's (`0::/path`) and v1's `cpu` controller's (`4:cpu,cpuacct:/path`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OwnCgroups {
    pub v2: Option<String>,
    pub v1_cpu: Option<String>,
}

pub fn parse_own_cgroups(proc_self_cgroup: &str) -> OwnCgroups {
    let mut own = OwnCgroups::default();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            own.v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "cpu") {
            own.v1_cpu = Some(path.to_string());
        }
    }
    own
}

/// The tightest quota over this process's cgroups (`own`: `/proc/self/cgroup`'s text).
fn cgroup_quota(own: &str) -> Option<usize> {
    let own = parse_own_cgroups(own);
    let v2 = own.v2.and_then(|path| {
        tightest(Path::new(CGROUP_V2_MOUNT), &path, |dir| {
            parse_cpu_max(&read(&dir.join("cpu.max"))?)
        })
    });
    let v1 = own.v1_cpu.and_then(|path| {
        CGROUP_V1_CPU_MOUNTS.iter().find_map(|mount| {
            tightest(Path::new(mount), &path, |dir| {
                let quota = read(&dir.join("cpu.cfs_quota_us"))?;
                parse_cfs_quota(&quota, &read(&dir.join("cpu.cfs_period_us"))?)
            })
        })
    });
    v2.into_iter().chain(v1).min()
}

/// The smallest quota from the cgroup `path` under `mount` up to the mount itself: a parent's
/// quota caps its children. In a container the host's path may not exist under the mount; then
/// only the folders that do count.
pub fn tightest(
    mount: &Path,
    path: &str,
    quota_in: impl Fn(&Path) -> Option<usize>,
) -> Option<usize> {
    let mut dir: PathBuf = mount.join(path.trim_start_matches('/'));
    let mut smallest = None;
    while dir.starts_with(mount) {
        smallest = smallest.into_iter().chain(quota_in(&dir)).min();
        if !dir.pop() {
            break;
        }
    }
    smallest
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_quotas_round_up_to_whole_cpus() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("150000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("max"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("0 100000"), None);
        assert_eq!(parse_cpu_max("100000 0"), None);
    }

    #[test]
    fn cgroup_v1_quotas_round_up_and_minus_one_is_none() {
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs_quota("150000\n", "100000\n"), Some(2));
        assert_eq!(parse_cfs_quota("400000", "100000"), Some(4));
        assert_eq!(parse_cfs_quota("", "100000"), None);
    }

    #[test]
    fn the_own_cgroups_are_read_from_proc_self_cgroup() {
        let hybrid = "9:name=systemd:/\n4:memory:/x\n2:cpuacct:/\n1:cpu:/docker/abc\n0::/\n";
        assert_eq!(
            parse_own_cgroups(hybrid),
            OwnCgroups {
                v2: Some("/".into()),
                v1_cpu: Some("/docker/abc".into()),
            }
        );
        let v1 = "5:cpu,cpuacct:/kubepods/pod1\n3:cpuset:/\n";
        assert_eq!(
            parse_own_cgroups(v1).v1_cpu.as_deref(),
            Some("/kubepods/pod1")
        );
        assert_eq!(parse_own_cgroups(v1).v2, None);
        let v2 = "0::/system.slice/liveup.service\n";
        assert_eq!(
            parse_own_cgroups(v2).v2.as_deref(),
            Some("/system.slice/liveup.service")
        );
        assert_eq!(parse_own_cgroups(""), OwnCgroups::default());
    }

    #[test]
    fn the_tightest_quota_on_the_way_up_wins() {
        let mount = Path::new("/cg");
        let quotas = |dir: &Path| match dir.to_str().unwrap() {
            "/cg/a" => Some(3),
            "/cg/a/b" => Some(6),
            _ => None,
        };
        assert_eq!(tightest(mount, "/a/b/c", quotas), Some(3));
        assert_eq!(tightest(mount, "/", quotas), None);
        assert_eq!(tightest(mount, "/elsewhere", quotas), None);
    }

    #[test]
    fn a_quota_below_the_cores_sets_the_count() {
        let cores = |count| UsableCpus {
            count,
            limit: CpuLimit::Cores,
        };
        let quota = |count| UsableCpus {
            count,
            limit: CpuLimit::CgroupQuota,
        };
        assert_eq!(within_quota(4, None), cores(4));
        assert_eq!(within_quota(4, Some(2)), quota(2));
        assert_eq!(within_quota(4, Some(4)), quota(4));
        assert_eq!(within_quota(2, Some(8)), cores(2));
        assert_eq!(within_quota(8, parse_cpu_max("150000 100000")), quota(2));
        assert_eq!(within_quota(0, None), cores(1));
    }

    #[test]
    fn this_machine_has_at_least_one_usable_cpu() {
        assert!(usable_cpus().count >= 1);
    }
}
