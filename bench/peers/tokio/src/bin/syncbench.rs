//! syncbench measures tokio::sync::Semaphore as the baseline peer of
//! ringflow's bench/sync_bench (same scenarios, same fields; "impl" is
//! "tokio"). It prints one JSON object per line to stdout; see README.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

#[path = "../peer.rs"]
mod peer;
use peer::{fail, runtime};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Uncontended,
    Contended,
    Hammer,
    Group,
}

/// n empty tasks through a JoinSet holding at most 64 (joining one before
/// each spawn at the limit, as task_group(64)'s spawn waits), then drained.
async fn group_loop(n: u64) -> u64 {
    let mut set = JoinSet::new();
    let mut joined = 0u64;
    for _ in 0..n {
        while set.len() >= 64 {
            set.join_next().await.unwrap().unwrap_or_else(|e| fail(&e.to_string()));
            joined += 1;
        }
        set.spawn(async {});
    }
    while let Some(r) = set.join_next().await {
        r.unwrap_or_else(|e| fail(&e.to_string()));
        joined += 1;
    }
    joined
}

/// n acquire+release of one unit; `yield_while_holding` yields before release.
async fn acquire_loop(s: Arc<Semaphore>, n: u64, yield_while_holding: bool) -> u64 {
    let mut got = 0u64;
    for _ in 0..n {
        let p = s.acquire().await.unwrap_or_else(|_| fail("semaphore closed"));
        got += 1;
        if yield_while_holding {
            tokio::task::yield_now().await;
        }
        drop(p);
    }
    got
}

/// The tasks are spawned (on the multi_thread runtime they run on workers,
/// not on the block_on thread); the time runs from before the spawn to the
/// last join, as in sync_bench.
fn once(rt: &Runtime, kind: Kind, ops: u64) -> Duration {
    rt.block_on(async move {
        let s = Arc::new(Semaphore::new(1));
        let start = Instant::now();
        let got = if kind == Kind::Group {
            tokio::spawn(group_loop(ops)).await.unwrap_or_else(|e| fail(&e.to_string()))
        } else if kind == Kind::Uncontended {
            tokio::spawn(acquire_loop(s.clone(), ops, false)).await.unwrap_or_else(|e| fail(&e.to_string()))
        } else {
            let y = kind == Kind::Contended;
            let a = tokio::spawn(acquire_loop(s.clone(), ops / 2, y));
            let b = tokio::spawn(acquire_loop(s.clone(), ops / 2, y));
            a.await.unwrap_or_else(|e| fail(&e.to_string())) + b.await.unwrap_or_else(|e| fail(&e.to_string()))
        };
        let took = start.elapsed();
        if got != ops || s.available_permits() != 1 {
            fail("a permit went missing");
        }
        took
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = s.len() / 2;
    if s.len() % 2 == 0 {
        round2((s[m - 1] + s[m]) / 2.0)
    } else {
        s[m]
    }
}

fn parse_u64(flag: &str, v: Option<String>) -> u64 {
    match v.as_deref().map(str::parse::<u64>) {
        Some(Ok(x)) => x,
        _ => fail(&format!("{} needs a non-negative integer", flag)),
    }
}

fn main() {
    let mut ops: u64 = 4_000_000;
    let mut reps: u64 = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ops" => ops = parse_u64("--ops", args.next()),
            "--reps" => reps = parse_u64("--reps", args.next()),
            "--quick" => {
                ops = 20_000;
                reps = 1;
            }
            "-h" | "--help" => {
                println!("usage: syncbench [--ops N=4000000] [--reps R=5] [--quick]");
                return;
            }
            _ => fail(&format!("unknown argument {:?} (usage: syncbench [--ops N] [--reps R] [--quick])", a)),
        }
    }
    if ops < 2 || reps < 1 {
        fail("need --ops >= 2 and --reps >= 1");
    }
    let ops = ops / 2 * 2; // two tasks do half each
    let rows = [
        ("semaphore_uncontended", Kind::Uncontended, 1usize),
        ("semaphore_uncontended", Kind::Uncontended, 2),
        ("semaphore_contended", Kind::Contended, 1),
        ("semaphore_contended", Kind::Contended, 2),
        ("semaphore_hammer", Kind::Hammer, 2),
        ("task_group_spawn_join", Kind::Group, 1),
        ("task_group_spawn_join", Kind::Group, 2),
    ];
    for (scenario, kind, workers) in rows {
        let rt = runtime(workers);
        let ops = if kind == Kind::Group { ops / 8 } else { ops };
        once(&rt, kind, ops); // warm-up
        let runs: Vec<f64> = (0..reps).map(|_| round2(once(&rt, kind, ops).as_nanos() as f64 / ops as f64)).collect();
        let parts: Vec<String> = runs.iter().map(|r| format!("{}", r)).collect();
        println!(
            "{{\"impl\":\"tokio\",\"scenario\":\"{}\",\"workers\":{},\"ops\":{},\"ns_per_op\":{},\"runs\":[{}]}}",
            scenario,
            workers,
            ops,
            median(&runs),
            parts.join(",")
        );
    }
}
