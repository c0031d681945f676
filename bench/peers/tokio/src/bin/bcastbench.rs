//! bcastbench measures tokio::sync::broadcast as a baseline peer for
//! ringflow's broadcast (bench/broadcast_bench.cpp): one sender task, 1, 16
//! and 256 receiver tasks, u64 values, capacity 1024, workers 1
//! (current_thread) and 2 (multi_thread). One JSON object per line; the
//! figure is ns per value per receiver (elapsed / (values * receivers)).
//!
//! Lossless, as ringflow's block receivers are: tokio's sender never waits
//! and a receiver that falls more than `capacity` behind loses values
//! (RecvError::Lagged), so the sender sends one buffer's worth and then
//! meets every receiver at a tokio::sync::Barrier. A lag is a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

#[path = "../peer.rs"]
mod peer;
use peer::{fail, runtime};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::Barrier;

const CAPACITY: usize = 1024;

/// One run: every task spawned, time from before spawning to the last receiver's end.
fn run(rt: &Runtime, receivers: usize, n: u64) -> Duration {
    rt.block_on(async move {
        let (tx, _) = broadcast::channel::<u64>(CAPACITY);
        let barrier = Arc::new(Barrier::new(receivers + 1));
        let rxs: Vec<_> = (0..receivers).map(|_| tx.subscribe()).collect();
        let start = Instant::now();
        let mut handles = Vec::with_capacity(receivers);
        for mut rx in rxs {
            let b = barrier.clone();
            handles.push(tokio::spawn(async move {
                let mut sum = 0u64;
                let mut got = 0u64;
                loop {
                    match rx.recv().await {
                        Ok(v) => {
                            sum = sum.wrapping_add(v);
                            got += 1;
                            if got % CAPACITY as u64 == 0 {
                                b.wait().await;
                            }
                        }
                        Err(RecvError::Closed) => break,
                        Err(RecvError::Lagged(k)) => fail(&format!("receiver lagged by {}", k)),
                    }
                }
                sum
            }));
        }
        let sender = tokio::spawn(async move {
            for i in 0..n {
                if tx.send(i).is_err() {
                    fail("no receivers");
                }
                if (i + 1) % CAPACITY as u64 == 0 {
                    barrier.wait().await;
                }
            }
            // dropping tx closes the channel
        });
        sender.await.unwrap_or_else(|e| fail(&format!("sender: {}", e)));
        let want = n * (n - 1) / 2;
        for h in handles {
            let sum = h.await.unwrap_or_else(|e| fail(&format!("receiver: {}", e)));
            if sum != want {
                fail(&format!("sum {} != {}", sum, want));
            }
        }
        start.elapsed()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let mut deliveries: u64 = 8_000_000;
    let mut reps: usize = 3;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = |i: usize| -> u64 {
            args.get(i + 1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| fail(&format!("{} needs a number", args[i])))
        };
        match args[i].as_str() {
            "--deliveries" => {
                deliveries = value(i);
                i += 1;
            }
            "--reps" => {
                reps = value(i) as usize;
                i += 1;
            }
            "--quick" => {
                deliveries = 200_000;
                reps = 1;
            }
            other => fail(&format!(
                "unknown argument {} (usage: bcastbench [--deliveries N] [--reps R] [--quick])",
                other
            )),
        }
        i += 1;
    }
    if reps == 0 || deliveries == 0 {
        fail("--reps and --deliveries must be positive");
    }
    for workers in [1usize, 2] {
        let rt = runtime(workers);
        for receivers in [1usize, 16, 256] {
            let n = std::cmp::max(deliveries / receivers as u64, 4096);
            run(&rt, receivers, n); // warm-up, not measured
            let runs: Vec<f64> = (0..reps)
                .map(|_| run(&rt, receivers, n).as_nanos() as f64 / (n as f64 * receivers as f64))
                .collect();
            let list: Vec<String> = runs.iter().map(|r| format!("{:.2}", r)).collect();
            println!(
                "{{\"impl\":\"tokio\",\"scenario\":\"broadcast\",\"workers\":{},\"receivers\":{},\"capacity\":{},\"values\":{},\"ns_per_value_per_receiver\":{:.2},\"runs\":[{}],\"note\":\"lossless: the sender meets every receiver at a Barrier after each {} values\"}}",
                workers,
                receivers,
                CAPACITY,
                n,
                median(runs.clone()),
                list.join(","),
                CAPACITY
            );
        }
    }
}
