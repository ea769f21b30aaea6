//! `cpu_usage`: CPU utilisation measured over a few seconds.
//!
//! `/proc/stat` holds cumulative CPU time per state since boot, so the only
//! honest utilisation figure is a difference of two reads. This tool reads
//! it once at the start and once per second after that, reporting the
//! running figure as progress, and the figure over the whole window at the
//! end. Waiting is done with tokio timers (never a blocking sleep), and a
//! cancelled call stops at once.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::procfs::{self, CpuTimes, StatSample};
use super::{CallError, ProgressUpdate, ToolContext, ToolOutput, output, round1};

/// The tool's name.
pub(super) const NAME: &str = "cpu_usage";
/// Sampling window when `seconds` is not given.
const DEFAULT_SECONDS: i64 = 3;
/// The longest sampling window.
const MAX_SECONDS: i64 = 30;

/// The Tool object for `tools/list`.
pub(super) fn definition() -> Value {
    let percent = |description: &str| json!({"type": "number", "minimum": 0, "maximum": 100, "description": description});
    super::tool_definition(
        NAME,
        "CPU usage",
        "Measures CPU utilisation of this node over the next `seconds` seconds by sampling \
         /proc/stat: overall busy percentage with a user/system/iowait/steal/idle breakdown, \
         and the busy percentage of each CPU. Takes `seconds` to answer; reports progress once \
         per second when the caller asks for progress, and stops when cancelled.",
        json!({
            "type": "object",
            "properties": {
                "seconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_SECONDS,
                    "description": "How long to measure, in seconds. Longer windows smooth out spikes.",
                    "default": DEFAULT_SECONDS,
                },
            },
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": {
                "sampled_seconds": {"type": "integer", "minimum": 1, "description": "Length of the measurement window."},
                "cpu_count": {"type": "integer", "minimum": 0, "description": "Online CPUs at the end of the window."},
                "usage_percent": percent("Share of all CPU time that was busy (not idle and not waiting for I/O)."),
                "breakdown_percent": {
                    "type": "object",
                    "description": "Where all CPU time went; sums to about 100.",
                    "properties": {
                        "user": percent("User space, including low-priority (nice) processes."),
                        "system": percent("Kernel, including hardware and soft interrupts."),
                        "iowait": percent("Idle while I/O was outstanding."),
                        "steal": percent("Taken by the hypervisor for other guests."),
                        "idle": percent("Idle."),
                    },
                    "required": ["user", "system", "iowait", "steal", "idle"],
                    "additionalProperties": false,
                },
                "per_cpu": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "cpu": {"type": "integer", "minimum": 0, "description": "CPU number (cpuN in /proc/stat)."},
                            "usage_percent": percent("Busy share of this CPU."),
                        },
                        "required": ["cpu", "usage_percent"],
                        "additionalProperties": false,
                    },
                },
            },
            "required": ["sampled_seconds", "cpu_count", "usage_percent", "breakdown_percent", "per_cpu"],
            "additionalProperties": false,
        }),
        false,
    )
}

/// The structured result.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct CpuUsage {
    /// The window, in seconds.
    sampled_seconds: u64,
    /// CPUs in the last sample.
    cpu_count: usize,
    /// Busy share of all CPUs.
    usage_percent: f64,
    /// Where the time went.
    breakdown_percent: Breakdown,
    /// Busy share per CPU.
    per_cpu: Vec<PerCpu>,
}

/// Shares of CPU time, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Breakdown {
    /// user + nice.
    user: f64,
    /// system + irq + softirq.
    system: f64,
    /// iowait.
    iowait: f64,
    /// steal.
    steal: f64,
    /// idle.
    idle: f64,
}

/// One CPU's busy share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct PerCpu {
    /// The N of cpuN.
    cpu: usize,
    /// Busy share.
    usage_percent: f64,
}

/// Samples for `seconds` seconds, reporting progress every second.
pub(super) async fn call(
    ctx: &ToolContext,
    arguments: &Map<String, Value>,
    progress: Option<UnboundedSender<ProgressUpdate>>,
    cancel: &CancellationToken,
) -> Result<ToolOutput, CallError> {
    let args = Args::new(NAME, arguments, &["seconds"])?;
    let seconds = args.integer("seconds", 1, MAX_SECONDS, DEFAULT_SECONDS)? as u64;
    if cancel.is_cancelled() {
        return Err(CallError::Cancelled);
    }
    let path = ctx.host.proc.join("stat");
    let read = || {
        let sample = procfs::read_string(&path)
            .map(|text| procfs::parse_stat(&text))
            .unwrap_or_default();
        match sample.all {
            Some(_) => Ok(sample),
            None => Err(CallError::Failed(format!(
                "could not read CPU times from {}; is HOST_PROC the host's procfs?",
                path.display()
            ))),
        }
    };
    let first = read()?;
    let start = tokio::time::Instant::now();
    let mut last = first.clone();
    for second in 1..=seconds {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(CallError::Cancelled),
            _ = tokio::time::sleep_until(start + Duration::from_secs(second)) => {}
        }
        last = read()?;
        if let Some(tx) = &progress {
            let (busy, _) = shares(first.all.unwrap_or_default(), last.all.unwrap_or_default());
            // A closed channel only means nobody listens any more.
            let _ = tx.send(ProgressUpdate {
                progress: second as f64,
                total: Some(seconds as f64),
                message: Some(format!("{second}/{seconds} s: CPU {busy}% busy so far")),
            });
        }
    }
    let usage = measure(seconds, &first, &last);
    let text = render(&usage);
    output(&usage, text)
}

/// The report for the window between two samples.
fn measure(seconds: u64, first: &StatSample, last: &StatSample) -> CpuUsage {
    let (usage_percent, breakdown_percent) =
        shares(first.all.unwrap_or_default(), last.all.unwrap_or_default());
    let per_cpu = last
        .per_cpu
        .iter()
        .filter_map(|(cpu, after)| {
            let (_, before) = first.per_cpu.iter().find(|(n, _)| n == cpu)?;
            Some(PerCpu {
                cpu: *cpu,
                usage_percent: shares(*before, *after).0,
            })
        })
        .collect();
    CpuUsage {
        sampled_seconds: seconds,
        cpu_count: last.per_cpu.len(),
        usage_percent,
        breakdown_percent,
        per_cpu,
    }
}

/// Busy percentage and breakdown of the time between two readings of one
/// CPU line. Counters that went backwards count as 0; a window with no
/// time counted at all is reported as fully idle.
fn shares(before: CpuTimes, after: CpuTimes) -> (f64, Breakdown) {
    let d = |a: u64, b: u64| b.saturating_sub(a) as f64;
    let user = d(before.user, after.user) + d(before.nice, after.nice);
    let system = d(before.system, after.system)
        + d(before.irq, after.irq)
        + d(before.softirq, after.softirq);
    let iowait = d(before.iowait, after.iowait);
    let steal = d(before.steal, after.steal);
    let idle = d(before.idle, after.idle);
    let total = user + system + iowait + steal + idle;
    if total <= 0.0 {
        let breakdown = Breakdown {
            user: 0.0,
            system: 0.0,
            iowait: 0.0,
            steal: 0.0,
            idle: 100.0,
        };
        return (0.0, breakdown);
    }
    let pct = |part: f64| round1(part * 100.0 / total);
    let breakdown = Breakdown {
        user: pct(user),
        system: pct(system),
        iowait: pct(iowait),
        steal: pct(steal),
        idle: pct(idle),
    };
    (pct(user + system + steal), breakdown)
}

/// One line overall, one for the CPUs.
fn render(usage: &CpuUsage) -> String {
    let b = usage.breakdown_percent;
    let per_cpu = usage
        .per_cpu
        .iter()
        .map(|c| format!("cpu{} {}%", c.cpu, c.usage_percent))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CPU {}% busy over {} s on {} CPUs (user {}%, system {}%, iowait {}%, steal {}%, idle {}%)\nper CPU: {}",
        usage.usage_percent,
        usage.sampled_seconds,
        usage.cpu_count,
        b.user,
        b.system,
        b.iowait,
        b.steal,
        b.idle,
        if per_cpu.is_empty() { "n/a" } else { &per_cpu }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{Fixture, args, real_ctx};
    use tokio::sync::mpsc;

    #[test]
    fn shares_of_a_window_are_exact() {
        let first = procfs::parse_stat(
            "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\n",
        );
        // 200 ticks pass: cpu0 is busy 90 of 100, cpu1 busy 10 of 100.
        let last = procfs::parse_stat(
            "cpu  170 10 60 890 60 5 5 0 0 0\ncpu0 110 10 35 405 30 5 5 0 0 0\ncpu1 60 0 25 485 30 0 0 0 0 0\ncpu2 1 1 1 1\n",
        );
        let usage = measure(2, &first, &last);
        assert_eq!(
            usage,
            CpuUsage {
                sampled_seconds: 2,
                cpu_count: 3,
                usage_percent: 50.0,
                breakdown_percent: Breakdown {
                    user: 40.0,
                    system: 10.0,
                    iowait: 5.0,
                    steal: 0.0,
                    idle: 45.0
                },
                // cpu2 came online during the window: no figure for it.
                per_cpu: vec![
                    PerCpu {
                        cpu: 0,
                        usage_percent: 90.0
                    },
                    PerCpu {
                        cpu: 1,
                        usage_percent: 10.0
                    },
                ],
            }
        );
        assert_eq!(
            render(&usage),
            "CPU 50% busy over 2 s on 3 CPUs (user 40%, system 10%, iowait 5%, steal 0%, idle 45%)\nper CPU: cpu0 90%, cpu1 10%"
        );
    }

    #[test]
    fn an_empty_or_backwards_window_is_idle() {
        let t = CpuTimes {
            user: 10,
            idle: 10,
            ..CpuTimes::default()
        };
        let (busy, b) = shares(t, t);
        assert_eq!((busy, b.idle), (0.0, 100.0));
        let earlier = CpuTimes { user: 5, ..t };
        let (busy, _) = shares(t, earlier);
        assert_eq!(busy, 0.0);
    }

    #[tokio::test]
    async fn one_second_on_this_machine_reports_progress() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = call(
            &real_ctx(),
            &args(json!({"seconds": 1})),
            Some(tx),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        let update = rx.recv().await.expect("one progress update");
        assert_eq!(update.progress, 1.0);
        assert_eq!(update.total, Some(1.0));
        assert!(update.message.unwrap().starts_with("1/1 s: CPU "));
        assert!(rx.recv().await.is_none(), "exactly one update per second");
        let s = &out.structured;
        assert_eq!(s["sampled_seconds"], 1);
        let cpus = s["cpu_count"].as_u64().unwrap();
        assert!(cpus >= 1);
        assert_eq!(s["per_cpu"].as_array().unwrap().len() as u64, cpus);
        let usage = s["usage_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&usage));
        let b = &s["breakdown_percent"];
        let sum: f64 = ["user", "system", "iowait", "steal", "idle"]
            .iter()
            .map(|k| b[*k].as_f64().unwrap())
            .sum();
        assert!((sum - 100.0).abs() < 1.0, "{b}");
    }

    #[tokio::test]
    async fn cancelling_stops_the_measurement() {
        let fx = Fixture::standard();
        let ctx = fx.ctx();
        // Already cancelled: no sampling at all.
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result = call(&ctx, &args(json!({"seconds": 30})), None, &cancel).await;
        assert!(matches!(result, Err(CallError::Cancelled)));

        // Cancelled after the first progress update of a 30 s window.
        let cancel = CancellationToken::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let canceller = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let first = rx.recv().await;
                cancel.cancel();
                first
            })
        };
        let result = call(&ctx, &args(json!({"seconds": 30})), Some(tx), &cancel).await;
        assert!(matches!(result, Err(CallError::Cancelled)), "{result:?}");
        let first = canceller
            .await
            .unwrap()
            .expect("a progress update came first");
        assert_eq!(first.progress, 1.0);
        assert_eq!(first.total, Some(30.0));
    }

    #[tokio::test]
    async fn a_static_fixture_counts_as_idle_and_a_broken_one_fails() {
        let fx = Fixture::standard();
        let out = call(
            &fx.ctx(),
            &args(json!({"seconds": 1})),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            out.structured,
            json!({
                "sampled_seconds": 1,
                "cpu_count": 2,
                "usage_percent": 0.0,
                "breakdown_percent": {"user": 0.0, "system": 0.0, "iowait": 0.0, "steal": 0.0, "idle": 100.0},
                "per_cpu": [{"cpu": 0, "usage_percent": 0.0}, {"cpu": 1, "usage_percent": 0.0}],
            })
        );
        fx.write("proc/stat", "cpu0 1 2 3 4\nnonsense\n");
        match call(&fx.ctx(), &args(json!({})), None, &CancellationToken::new()).await {
            Err(CallError::Failed(msg)) => assert!(msg.contains("CPU times"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
