//! blockingbench: tokio::task::spawn_blocking round trip (a task awaits a
//! trivial closure on the blocking pool, one call after another), as the
//! peer of bench/blocking_bench. Prints one JSON object on stdout:
//! {"bench":"blocking","impl":"tokio","results":[{workers, calls, reps, ns_per_call}]}
//! workers 1: current_thread runtime; 2: multi_thread with 2 workers.
//! The timed loop runs in a spawned task, as ringflow's does.
//!   blockingbench [--calls N] [--reps R]

use std::time::Instant;

use tokio::runtime::Runtime;

#[path = "../peer.rs"]
mod peer;
use peer::{fail, runtime};

async fn round_trips(n: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        sum += tokio::task::spawn_blocking(|| 1u64).await.unwrap_or_else(|e| fail(&format!("{}", e)));
    }
    sum
}

fn ns_per_call(workers: usize, calls: u64) -> f64 {
    let rt = runtime(workers);
    rt.block_on(round_trips(1000));
    let start = Instant::now();
    let sum = rt.block_on(async move { tokio::spawn(round_trips(calls)).await.unwrap_or_else(|e| fail(&format!("{}", e))) });
    let el = start.elapsed();
    if sum != calls {
        fail("wrong sum");
    }
    el.as_nanos() as f64 / calls as f64
}

fn main() {
    let mut calls: u64 = 200000;
    let mut reps: usize = 5;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--calls" if i + 1 < args.len() => {
                calls = args[i + 1].parse().unwrap_or_else(|_| fail("bad --calls"));
                i += 1;
            }
            "--reps" if i + 1 < args.len() => {
                reps = args[i + 1].parse().unwrap_or_else(|_| fail("bad --reps"));
                i += 1;
            }
            _ => fail("usage: blockingbench [--calls N] [--reps R]"),
        }
        i += 1;
    }
    let mut rows = Vec::new();
    for workers in [1usize, 2] {
        let mut v: Vec<f64> = (0..reps).map(|_| ns_per_call(workers, calls)).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        rows.push(format!(
            "{{\"workers\":{},\"calls\":{},\"reps\":{},\"ns_per_call\":{:.1}}}",
            workers, calls, reps, v[v.len() / 2]
        ));
    }
    println!("{{\"bench\":\"blocking\",\"impl\":\"tokio\",\"results\":[{}]}}", rows.join(","));
}
