//! A container's CPU and memory use, computed once for everyone who shows it (`docker::stats`
//! for scripts, the monitor's container panel), the way `docker stats` computes it so the
//! numbers match what an operator sees there.
//!
//! The rules are the docker CLI's (`cli/command/container/stats_helpers.go`):
//! * **CPU %** = (container CPU time delta / host CPU time delta) × online CPUs × 100,
//!   between the engine's two samples (`precpu_stats` and `cpu_stats`); online CPUs fall back
//!   to the per-CPU usage count when the engine does not say. A container that used no CPU
//!   (or whose counter went back) is 0 %.
//! * **Memory** = usage minus the page cache the kernel can drop: `total_inactive_file` on
//!   cgroup v1, `inactive_file` on cgroup v2, each subtracted only when smaller than the
//!   usage. (Docker 19.03 and older subtracted `cache`; the current rule is the one used here.)
//!
//! Typed and free of Rhai: the host layer turns a [`Usage`] into a script's map.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;

/// One container's CPU and memory use. `None` where the engine's sample lacks the numbers
/// (a stopped container, a first sample with no previous one to compare with).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Percent of one CPU (200.0 is two CPUs busy), as `docker stats` shows it.
    pub cpu_percent: Option<f64>,
    /// Bytes in use, less the page cache.
    pub mem_bytes: Option<u64>,
    /// The container's memory limit (the host's memory when it has none).
    pub mem_limit: Option<u64>,
}

impl Usage {
    /// `mem_bytes` as a percentage of `mem_limit`.
    pub fn mem_percent(&self) -> Option<f64> {
        match (self.mem_bytes, self.mem_limit) {
            (Some(used), Some(limit)) if limit > 0 => Some(used as f64 / limit as f64 * 100.0),
            _ => None,
        }
    }
}

fn total(c: Option<&ContainerCpuStats>) -> Option<u64> {
    c.and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage)
}

fn system(c: Option<&ContainerCpuStats>) -> Option<u64> {
    c.and_then(|c| c.system_cpu_usage)
}

fn cpu_percent(s: &ContainerStatsResponse) -> Option<f64> {
    let (cpu, pre) = (s.cpu_stats.as_ref(), s.precpu_stats.as_ref());
    let (t, tp, sy, syp) = (total(cpu)?, total(pre)?, system(cpu)?, system(pre)?);
    if sy <= syp {
        return None;
    }
    let per_cpu = cpu
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.percpu_usage.as_ref())
        .map(Vec::len);
    let cpus = match cpu.and_then(|c| c.online_cpus) {
        Some(n) if n > 0 => n as f64,
        _ => per_cpu.unwrap_or(1).max(1) as f64,
    };
    Some(t.saturating_sub(tp) as f64 / (sy - syp) as f64 * cpus * 100.0)
}

fn mem_bytes(s: &ContainerStatsResponse) -> Option<u64> {
    let m = s.memory_stats.as_ref()?;
    let used = m.usage?;
    let stat = |k: &str| m.stats.as_ref().and_then(|st| st.get(k)).copied();
    let cache = stat("total_inactive_file")
        .filter(|&v| v < used)
        .or_else(|| stat("inactive_file").filter(|&v| v < used));
    Some(used - cache.unwrap_or(0))
}

/// The usage in one stats sample of the engine.
pub fn usage(s: &ContainerStatsResponse) -> Usage {
    Usage {
        cpu_percent: cpu_percent(s),
        mem_bytes: mem_bytes(s),
        mem_limit: s.memory_stats.as_ref().and_then(|m| m.limit),
    }
}

/// Why no sample came.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("no answer within {}", crate::util::human::duration(*.0))]
    Timeout(Duration),
    #[error(transparent)]
    Engine(#[from] bollard::errors::Error),
}

/// Asks the engine for one sample of container `id` (it takes about a second: the engine
/// samples CPU twice). `Ok(None)` when the engine sends nothing (the container is gone).
/// Both `docker::stats` and the monitor read usage through here.
pub async fn sample(
    docker: &Docker,
    id: &str,
    within: Duration,
) -> Result<Option<Usage>, SampleError> {
    let mut st = docker.stats(
        id,
        Some(StatsOptions {
            stream: false,
            one_shot: false,
        }),
    );
    match tokio::time::timeout(within, st.next()).await {
        Err(_) => Err(SampleError::Timeout(within)),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(e.into()),
        Ok(Some(Ok(s))) => Ok(Some(usage(&s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A sample as an engine on cgroup v2 sends it (fields trimmed to the ones read).
    fn sample_v2() -> serde_json::Value {
        json!({
            "cpu_stats": { "cpu_usage": { "total_usage": 2_000_000_000u64 },
                           "system_cpu_usage": 110_000_000_000u64, "online_cpus": 2 },
            "precpu_stats": { "cpu_usage": { "total_usage": 1_500_000_000u64 },
                              "system_cpu_usage": 100_000_000_000u64, "online_cpus": 2 },
            "memory_stats": { "usage": 50_000_000u64, "limit": 200_000_000u64,
                              "stats": { "inactive_file": 10_000_000u64, "anon": 30_000_000u64 } }
        })
    }

    fn parse(v: serde_json::Value) -> ContainerStatsResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cpu_and_memory_as_docker_stats_shows_them() {
        let u = usage(&parse(sample_v2()));
        // 0.5 s of CPU over 10 s of host time on 2 CPUs
        assert_eq!(u.cpu_percent, Some(10.0));
        assert_eq!(u.mem_bytes, Some(40_000_000));
        assert_eq!(u.mem_limit, Some(200_000_000));
        assert_eq!(u.mem_percent(), Some(20.0));
    }

    #[test]
    fn cgroup_v1_subtracts_the_hierarchical_inactive_file() {
        let mut v = sample_v2();
        v["memory_stats"]["stats"] =
            json!({ "inactive_file": 1_000_000u64, "total_inactive_file": 12_000_000u64 });
        assert_eq!(usage(&parse(v)).mem_bytes, Some(38_000_000));
    }

    #[test]
    fn a_cache_larger_than_the_usage_is_not_subtracted() {
        let mut v = sample_v2();
        v["memory_stats"]["stats"] = json!({ "inactive_file": 90_000_000u64 });
        assert_eq!(usage(&parse(v.clone())).mem_bytes, Some(50_000_000));
        v["memory_stats"]["stats"] =
            json!({ "total_inactive_file": 90_000_000u64, "inactive_file": 5_000_000u64 });
        assert_eq!(usage(&parse(v)).mem_bytes, Some(45_000_000));
    }

    #[test]
    fn cpus_fall_back_to_the_per_cpu_count() {
        let mut v = sample_v2();
        v["cpu_stats"]["online_cpus"] = json!(0);
        v["cpu_stats"]["cpu_usage"]["percpu_usage"] = json!([1, 2, 3, 4]);
        assert_eq!(usage(&parse(v)).cpu_percent, Some(20.0));
    }

    #[test]
    fn a_first_or_stopped_sample_has_no_numbers() {
        let mut v = sample_v2();
        v["precpu_stats"] = json!({});
        let u = usage(&parse(v));
        assert_eq!(u.cpu_percent, None);
        assert_eq!(u.mem_bytes, Some(40_000_000));
        let u = usage(&parse(
            json!({ "cpu_stats": {}, "precpu_stats": {}, "memory_stats": {} }),
        ));
        assert_eq!(u, Usage::default());
        assert_eq!(u.mem_percent(), None);
        // no host time passed between the samples: no rate
        let mut v = sample_v2();
        v["precpu_stats"]["system_cpu_usage"] = json!(110_000_000_000u64);
        assert_eq!(usage(&parse(v)).cpu_percent, None);
        // a counter that went back counts as idle
        let mut v = sample_v2();
        v["precpu_stats"]["cpu_usage"]["total_usage"] = json!(3_000_000_000u64);
        assert_eq!(usage(&parse(v)).cpu_percent, Some(0.0));
    }
}
