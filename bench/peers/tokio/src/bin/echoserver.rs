//! echoserver is a minimal task-per-connection Tokio TCP echo server used as a
//! baseline peer for ringflow's echo benchmark.
//!
//! usage: echoserver [--addr 127.0.0.1] [--port 0] [--threads 1]
//! --threads 1 runs a current_thread runtime, N > 1 a multi_thread runtime
//! with N workers. Prints "listening <port>" once listening (the real port
//! when --port 0) and exits 0 on SIGINT or SIGTERM.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::process::exit;
use std::task::{Context, Poll};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::signal::unix::{signal, Signal, SignalKind};

fn fail(msg: &str) -> ! {
    eprintln!("echoserver: {}", msg);
    exit(1);
}

async fn echo(mut c: TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Resolves when either signal arrives (tokio::select! needs the "macros"
/// feature; this avoids the proc-macro dependency).
struct EitherSignal(Signal, Signal);

impl Future for EitherSignal {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.0.poll_recv(cx).is_ready() || this.1.poll_recv(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn main() {
    let mut addr = String::from("127.0.0.1");
    let mut port: u16 = 0;
    let mut threads: usize = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next();
        let bad = || -> ! { fail(&format!("{} needs a valid value", a)) };
        match a.as_str() {
            "--addr" | "-addr" => addr = v.unwrap_or_else(|| bad()),
            "--port" | "-port" => port = v.and_then(|s| s.parse().ok()).unwrap_or_else(|| bad()),
            "--threads" | "-threads" => {
                threads = v.and_then(|s| s.parse().ok()).filter(|&t| t >= 1).unwrap_or_else(|| bad())
            }
            _ => fail(&format!(
                "unknown argument {:?} (usage: echoserver [--addr A] [--port P] [--threads N])",
                a
            )),
        }
    }
    let rt = if threads == 1 {
        Builder::new_current_thread().enable_io().build()
    } else {
        Builder::new_multi_thread().worker_threads(threads).enable_io().build()
    }
    .unwrap_or_else(|e| fail(&format!("runtime: {}", e)));

    rt.block_on(async move {
        // An IP literal, or a host name such as "localhost" (first address).
        let ln = TcpListener::bind((addr.as_str(), port))
            .await
            .unwrap_or_else(|e| fail(&format!("bind {}:{}: {}", addr, port, e)));
        // Install the handlers before announcing, so a SIGTERM sent right
        // after "listening" is seen is never the default (killing) action.
        let term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(&format!("signal: {}", e)));
        let int = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail(&format!("signal: {}", e)));
        let real = ln.local_addr().unwrap_or_else(|e| fail(&format!("local_addr: {}", e))).port();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {}", real);
        let _ = out.flush();
        drop(out);

        tokio::spawn(async move {
            loop {
                match ln.accept().await {
                    Ok((c, _)) => {
                        // Go's net package sets TCP_NODELAY by default; match it.
                        let _ = c.set_nodelay(true);
                        tokio::spawn(echo(c));
                    }
                    // e.g. EMFILE: keep serving rather than exit.
                    Err(e) => eprintln!("echoserver: accept: {}", e),
                }
            }
        });
        EitherSignal(term, int).await;
    });
    // Do not wait for open connections: exit at once, status 0.
    exit(0);
}
