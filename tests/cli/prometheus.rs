//! A real Prometheus (Debian's `prometheus`) on a loopback port of the test's own, scraping a
//! tiny exporter the test controls: each scrape counts 100 more requests and as many more
//! errors as the test says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for Prometheus to start or to have scraped what it waits on.
const PATIENCE: Duration = Duration::from_secs(90);

/// Counters `app_requests_total` and `app_errors_total`, served at `/metrics`.
pub struct Exporter {
    pub port: u16,
    errors_per_scrape: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Exporter {
    pub fn start(errors_per_scrape: u64) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let errors_per_scrape = Arc::new(AtomicU64::new(errors_per_scrape));
        let stop = Arc::new(AtomicBool::new(false));
        let (errors, stopped) = (errors_per_scrape.clone(), stop.clone());
        thread::spawn(move || {
            let (mut requests, mut failed) = (0u64, 0u64);
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                if read_head(&mut conn).is_none() {
                    continue;
                }
                requests += 100;
                failed += errors.load(Ordering::SeqCst);
                let body = format!(
                    "# TYPE app_requests_total counter\napp_requests_total {requests}\n# TYPE app_errors_total counter\napp_errors_total {failed}\n"
                );
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Exporter {
            port,
            errors_per_scrape,
            stop,
        }
    }

    pub fn set_errors_per_scrape(&self, n: u64) {
        self.errors_per_scrape.store(n, Ordering::SeqCst);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_head(conn: &mut TcpStream) -> Option<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(());
        }
    }
}

/// Prometheus scraping one exporter every second, its data in `dir`; killed when dropped.
pub struct Prometheus {
    pub port: u16,
    child: Child,
}

impl Prometheus {
    /// Prometheus cannot be told to pick a free port and say which: it gets one that was free a
    /// moment ago. Should another process take it first, this one fails to bind (and is started
    /// again on another port) or a stranger answers (told apart by the data folder it names).
    pub fn start(dir: &Path, exporter: &Exporter) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
                exporter.port
            ),
        )
        .unwrap();
        let data = dir.join("data");
        let started = Instant::now();
        loop {
            let port = free_port();
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
                .spawn()
                .expect("Debian's `prometheus` package must be installed (.ci/run installs it)");
            let mut prometheus = Prometheus { port, child };
            loop {
                assert!(
                    started.elapsed() < PATIENCE,
                    "Prometheus did not get ready: {}",
                    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                );
                if prometheus.child.try_wait().unwrap().is_some() {
                    // Most likely the port was taken: try another.
                    break;
                }
                // Ready but not ours: another process holds the port, and ours will exit.
                if get(port, "/-/ready").is_some_and(|(status, _)| status == 200)
                    && prometheus.serves(&data)
                {
                    return prometheus;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Whether the server on our port is ours: the one keeping its data in `data`.
    fn serves(&self, data: &Path) -> bool {
        let Some((_, body)) = get(self.port, "/api/v1/status/flags") else {
            return false;
        };
        let flags: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        flags["data"]["storage.tsdb.path"].as_str() == data.to_str()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The value of `expr` now, if it is one number.
    pub fn value(&self, expr: &str) -> Option<f64> {
        let (_, body) = get(self.port, &format!("/api/v1/query?query={}", encode(expr)))?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = answer["data"]["result"].as_array()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls until `expr`'s value passes `test`: Prometheus has scraped what the test needs.
    pub fn wait_until(&self, expr: &str, test: impl Fn(f64) -> bool) {
        let started = Instant::now();
        loop {
            let value = self.value(expr);
            if value.is_some_and(&test) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "`{expr}` never got there (last {value:?})"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the OS gives out another before reusing it soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    // Prometheus answers small queries with a Content-Length; a chunked answer is not parsed.
    Some((status, body.to_string()))
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
