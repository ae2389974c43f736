//! CPU time from /proc (Linux): of this process (worker, pollers, sandbox), of the emulator, and
//! of the whole machine, so a run shows which side was busy and whether anything else was.

use std::time::Duration;

/// CPU seconds at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub harness: f64,
    pub emulator: f64,
    /// All CPUs, busy (everything but idle and iowait).
    pub machine_busy: f64,
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in seconds (0 when it cannot be read).
fn process_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // After ')': state is index 0, so utime (field 14) is 11 and stime (15) is 12.
    match (field(11), field(12)) {
        (Some(u), Some(s)) => (u + s) / ticks_per_second(),
        _ => 0.0,
    }
}

fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle) / ticks_per_second()
}

pub fn snapshot(emulator_pid: Option<u32>) -> Snapshot {
    Snapshot {
        harness: process_seconds("self"),
        emulator: emulator_pid.map_or(0.0, |p| process_seconds(&p.to_string())),
        machine_busy: machine_busy_seconds(),
    }
}

/// Cores used on average between two snapshots `wall` apart.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub harness: f64,
    pub emulator: f64,
    pub other: f64,
    pub machine: f64,
}

pub fn usage(before: Snapshot, after: Snapshot, wall: Duration) -> Usage {
    let w = wall.as_secs_f64().max(1e-9);
    let harness = (after.harness - before.harness) / w;
    let emulator = (after.emulator - before.emulator) / w;
    let machine = (after.machine_busy - before.machine_busy) / w;
    Usage {
        harness,
        emulator,
        other: (machine - harness - emulator).max(0.0),
        machine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_the_machine_is_busier() {
        // Spin until a clock tick is charged to this process (bounded): on a busy machine
        // 100 ms of wall time can pass without one.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut s = snapshot(Some(std::process::id()));
        while s.harness == 0.0 && start.elapsed() < Duration::from_secs(10) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
            s = snapshot(Some(std::process::id()));
        }
        assert!(s.harness > 0.0);
        assert!((s.emulator - s.harness).abs() < 0.1);
        assert!(s.machine_busy >= s.harness);
    }
}
