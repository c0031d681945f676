//! chanbench measures tokio::sync::mpsc bounded channels as a baseline peer
//! for ringflow. It prints one JSON object per line to stdout; see README.md.
//! Output fields mirror bench/peers/go/chanbench ("impl" is "tokio").

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

#[path = "../peer.rs"]
mod peer;
use peer::{fail, runtime};
use tokio::sync::{mpsc, Mutex};

/// spsc: one sender task -> one receiver task. Both are spawned (so on the
/// multi_thread runtime they run on workers, not on the block_on thread);
/// the time is taken from just before spawning to the receiver's last recv.
fn spsc(rt: &Runtime, capacity: usize, n: u64) -> Duration {
    rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel::<u64>(capacity);
        let start = Instant::now();
        let sender = tokio::spawn(async move {
            for i in 0..n {
                if tx.send(i).await.is_err() {
                    fail("spsc: receiver dropped");
                }
            }
        });
        let receiver = tokio::spawn(async move {
            let mut sum = 0u64;
            while let Some(v) = rx.recv().await {
                sum = sum.wrapping_add(v);
            }
            (sum, Instant::now())
        });
        sender.await.unwrap_or_else(|e| fail(&format!("spsc sender: {}", e)));
        let (sum, end) = receiver
            .await
            .unwrap_or_else(|e| fail(&format!("spsc receiver: {}", e)));
        let want = n * (n - 1) / 2;
        if sum != want {
            fail(&format!("spsc: sum {} != {}", sum, want));
        }
        end - start
    })
}

/// mpmc: p senders (n/p items each) -> p receiver tasks. tokio's mpsc has a
/// single Receiver, so the p receiver tasks share it through
/// Arc<tokio::sync::Mutex<Receiver>> and lock it around every recv().
fn mpmc(rt: &Runtime, p: u64, capacity: usize, n: u64) -> Duration {
    rt.block_on(async move {
        let per = n / p;
        let total = per * p;
        let (tx, rx) = mpsc::channel::<u64>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let start = Instant::now();
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for k in 0..p {
            let tx = tx.clone();
            senders.push(tokio::spawn(async move {
                for i in k * per..(k + 1) * per {
                    if tx.send(i).await.is_err() {
                        fail("mpmc: receivers dropped");
                    }
                }
            }));
            let rx = Arc::clone(&rx);
            receivers.push(tokio::spawn(async move {
                let mut sum = 0u64;
                loop {
                    let v = rx.lock().await.recv().await;
                    match v {
                        Some(v) => sum = sum.wrapping_add(v),
                        None => break,
                    }
                }
                (sum, Instant::now())
            }));
        }
        drop(tx); // channel closes when the last sender task finishes
        for s in senders {
            s.await.unwrap_or_else(|e| fail(&format!("mpmc sender: {}", e)));
        }
        let mut sum = 0u64;
        let mut end = start;
        for r in receivers {
            let (s, e) = r
                .await
                .unwrap_or_else(|e| fail(&format!("mpmc receiver: {}", e)));
            sum = sum.wrapping_add(s);
            if e > end {
                end = e;
            }
        }
        let want = total * (total - 1) / 2;
        if sum != want {
            fail(&format!("mpmc: sum {} != {}", sum, want));
        }
        end - start
    })
}

/// pingpong: a value bounces between two spawned tasks through two capacity-1
/// channels, `rounds` round trips; time from start to the last pong received.
fn pingpong(rt: &Runtime, rounds: u64) -> Duration {
    rt.block_on(async move {
        let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
        let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
        let echo = tokio::spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                if pong_tx.send(v + 1).await.is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let driver = tokio::spawn(async move {
            let mut v = 0u64;
            for _ in 0..rounds {
                if ping_tx.send(v).await.is_err() {
                    fail("pingpong: echo task gone");
                }
                v = match pong_rx.recv().await {
                    Some(v) => v,
                    None => fail("pingpong: pong closed"),
                };
            }
            (v, Instant::now()) // ping_tx dropped here: echo task exits
        });
        let (v, end) = driver
            .await
            .unwrap_or_else(|e| fail(&format!("pingpong driver: {}", e)));
        echo.await.unwrap_or_else(|e| fail(&format!("pingpong echo: {}", e)));
        if v != rounds {
            fail(&format!("pingpong: got {} want {}", v, rounds));
        }
        end - start
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

/// Runs f `reps` times; returns ns per unit for each run.
// One unmeasured warm-up run first (caches, page faults, clock ramp), as in
// every implementation's bench; then reps measured runs, ns per unit each.
fn measure<F: FnMut() -> Duration>(reps: usize, units: u64, mut f: F) -> Vec<f64> {
    f();
    (0..reps)
        .map(|_| round2(f().as_nanos() as f64 / units as f64))
        .collect()
}

fn runs_json(runs: &[f64]) -> String {
    let parts: Vec<String> = runs.iter().map(|r| format!("{}", r)).collect();
    format!("[{}]", parts.join(","))
}

fn parse_u64(flag: &str, v: Option<String>) -> u64 {
    match v.as_deref().map(str::parse::<u64>) {
        Some(Ok(x)) => x,
        _ => fail(&format!("{} needs a non-negative integer", flag)),
    }
}

fn main() {
    let mut items: u64 = 10_000_000;
    let mut reps: u64 = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--items" | "-items" => items = parse_u64("--items", args.next()),
            "--reps" | "-reps" => reps = parse_u64("--reps", args.next()),
            "-h" | "--help" => {
                println!("usage: chanbench [--items N=10000000] [--reps R=3]");
                return;
            }
            _ => fail(&format!("unknown argument {:?} (usage: chanbench [--items N] [--reps R])", a)),
        }
    }
    if items < 4 || reps < 1 {
        fail("need --items >= 4 and --reps >= 1");
    }
    let n = items;
    let reps = reps as usize;

    for workers in [1usize, 2] {
        let rt = runtime(workers);
        for cap in [1usize, 64, 1024] {
            let runs = measure(reps, n, || spsc(&rt, cap, n));
            println!(
                "{{\"impl\":\"tokio\",\"scenario\":\"spsc\",\"workers\":{},\"capacity\":{},\"items\":{},\"ns_per_item\":{},\"runs\":{}}}",
                workers, cap, n, median(&runs), runs_json(&runs)
            );
        }
    }

    {
        let rt = runtime(2);
        let total = n / 4 * 4;
        let runs = measure(reps, total, || mpmc(&rt, 4, 1024, n));
        println!(
            "{{\"impl\":\"tokio\",\"scenario\":\"mpmc\",\"workers\":2,\"capacity\":1024,\"items\":{},\"ns_per_item\":{},\"runs\":{},\"note\":\"tokio mpsc has a single Receiver: the 4 receiver tasks share it as Arc<tokio::sync::Mutex<Receiver>>, locked around each recv\"}}",
            total, median(&runs), runs_json(&runs)
        );
    }

    let rounds = std::cmp::max(n / 10, 100_000);
    for workers in [1usize, 2] {
        let rt = runtime(workers);
        let runs = measure(reps, rounds, || pingpong(&rt, rounds));
        println!(
            "{{\"impl\":\"tokio\",\"scenario\":\"pingpong\",\"workers\":{},\"capacity\":1,\"roundtrips\":{},\"ns_per_roundtrip\":{},\"runs\":{}}}",
            workers, rounds, median(&runs), runs_json(&runs)
        );
    }
}
