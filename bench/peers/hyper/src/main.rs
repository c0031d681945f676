//! hyperhello: the Tokio + hyper peer of ringflow's examples/http_hello for
//! bench/http.sh. GET / answers "hello, world\n" with Content-Type
//! text/plain (hyper adds Date and Content-Length, as ringflow does);
//! anything else is 404. HTTP/1.1 with keep-alive and pipelining, one task
//! per connection on a current_thread runtime.
//!
//! usage: hyperhello [PORT]   (on 127.0.0.1; 0, the default: an ephemeral
//! port). Prints "listening <port>" once bound, with SIGINT/SIGTERM
//! handlers installed, and exits 0 on either.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::process::exit;
use std::task::{Context, Poll};

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::Http;
use hyper::service::service_fn;
use hyper::{Body, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::runtime::Builder;
use tokio::signal::unix::{signal, Signal, SignalKind};

fn fail(msg: &str) -> ! {
    eprintln!("hyperhello: {}", msg);
    exit(1);
}

async fn hello(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let ok = req.uri().path() == "/" && (req.method() == Method::GET || req.method() == Method::HEAD);
    let mut res = if ok {
        Response::new(Body::from("hello, world\n"))
    } else {
        let mut r = Response::new(Body::from("not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(res)
}

/// Resolves when either signal arrives (without tokio's macros feature).
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
    let port: u16 = match std::env::args().nth(1) {
        None => 0,
        Some(s) => s.parse().unwrap_or_else(|_| fail("usage: hyperhello [PORT]")),
    };
    let rt = Builder::new_current_thread().enable_io().build().unwrap_or_else(|e| fail(&format!("runtime: {}", e)));
    rt.block_on(async move {
        let ln = TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|e| fail(&format!("bind: {}", e)));
        let term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(&format!("signal: {}", e)));
        let int = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail(&format!("signal: {}", e)));
        let real = ln.local_addr().unwrap_or_else(|e| fail(&format!("local_addr: {}", e))).port();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {}", real);
        let _ = out.flush();
        drop(out);
        tokio::spawn(async move {
            let mut http = Http::new();
            http.http1_only(true).http1_keep_alive(true).pipeline_flush(true);
            loop {
                match ln.accept().await {
                    Ok((c, _)) => {
                        let _ = c.set_nodelay(true);
                        let conn = http.serve_connection(c, service_fn(hello));
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    Err(e) => eprintln!("hyperhello: accept: {}", e),
                }
            }
        });
        EitherSignal(term, int).await;
    });
    exit(0);
}
