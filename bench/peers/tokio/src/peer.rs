//! What every Tokio peer benchmark shares: failing with the program's name,
//! and the runtime a row runs on (current_thread for one worker, else
//! multi_thread with that many workers, as ringflow's runtime(threads)).
//! Included by each binary with `#[path = "../peer.rs"] mod peer;`.

use std::process::exit;

use tokio::runtime::{Builder, Runtime};

/// Prints "<program>: msg" on stderr and exits 1.
pub fn fail(msg: &str) -> ! {
    let prog = std::env::args().next().unwrap_or_default();
    let name = std::path::Path::new(&prog).file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or(prog);
    eprintln!("{}: {}", name, msg);
    exit(1);
}

/// workers == 1: current_thread runtime; else multi_thread with `workers` workers.
pub fn runtime(workers: usize) -> Runtime {
    let rt = if workers == 1 {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().worker_threads(workers).build()
    };
    rt.unwrap_or_else(|e| fail(&format!("runtime: {}", e)))
}
