//! A real headless Chromium driven through chromedriver's WebDriver protocol (plain HTTP and
//! JSON on loopback, spoken here with std's TcpStream: the few commands the dashboard test
//! needs do not warrant an HTTP client crate). The driver picks its own free port; dropping a
//! [`Browser`] ends its session (and with it the browser) and the driver.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a page may take to show what a test waits for on a busy machine.
pub const PATIENCE: Duration = Duration::from_secs(90);

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (`--no-sandbox`: CI runs as root).
    pub fn start() -> Browser {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian: chromium-driver)");
        let mut lines = BufReader::new(driver.stdout.take().unwrap());
        let port = loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap() == 0 {
                let _ = driver.kill();
                panic!("chromedriver ended without saying its port");
            }
            if let Some(rest) = line
                .trim()
                .strip_prefix("ChromeDriver was started successfully on port ")
            {
                break rest.trim_end_matches('.').parse().expect("a port");
            }
        };
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-breakpad",
                     "--window-size=1200,860", "--hide-scrollbars"]
        }}}});
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.command("GET", "url", Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The rendered text of the first element `css` selects, `None` while there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        let element = self.find(css)?;
        let text = self.command("GET", &format!("element/{element}/text"), Value::Null);
        Some(text.as_str().unwrap_or("").to_string())
    }

    pub fn click(&self, css: &str) {
        let element = self
            .find(css)
            .unwrap_or_else(|| panic!("no {css} on {}", self.url()));
        self.command("POST", &format!("element/{element}/click"), json!({}));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self
            .find(css)
            .unwrap_or_else(|| panic!("no {css} on {}", self.url()));
        self.command(
            "POST",
            &format!("element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Runs `script` in the page and returns what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Waits until `ready` holds of the page, checking again as the page changes; panics with
    /// `what` and the page's text after [`PATIENCE`].
    pub fn wait_until(&self, what: &str, ready: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !ready(self) {
            if Instant::now() > deadline {
                panic!(
                    "waited in vain for {what} on {}:\n{}",
                    self.url(),
                    self.text("body").unwrap_or_default()
                );
            }
            // A poll interval, not a synchronization: the condition itself is what is waited on.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The viewport as a PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let png = self.command("GET", "screenshot", Value::Null);
        base64_decode(png.as_str().expect("base64 PNG"))
    }

    fn find(&self, css: &str) -> Option<String> {
        let found = self.call(
            "POST",
            &format!("/session/{}/elements", self.session),
            Some(json!({ "using": "css selector", "value": css })),
        );
        let first = found.as_array()?.first()?.as_object()?.values().next()?;
        Some(first.as_str()?.to_string())
    }

    fn command(&self, method: &str, what: &str, body: Value) -> Value {
        let body = (method == "POST").then_some(body);
        self.call(method, &format!("/session/{}/{what}", self.session), body)
    }

    /// One WebDriver request; the `value` of its answer. A WebDriver error panics.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("chromedriver listens");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // chromedriver keeps the connection open whatever the request says: read the head, then
        // exactly the body it announces.
        let mut reader = BufReader::new(stream);
        let mut length = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("content-length:") {
                length = n.trim().parse::<usize>().ok();
            }
            chunked |= line == "transfer-encoding: chunked";
        }
        let payload = if chunked {
            unchunk(&mut reader)
        } else {
            let mut body = vec![0; length.expect("a Content-Length")];
            reader.read_exact(&mut body).unwrap();
            body
        };
        let payload = String::from_utf8_lossy(&payload);
        let value: Value =
            serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{e}: {payload}"));
        let value = value["value"].clone();
        if value.get("error").is_some() {
            panic!("WebDriver {method} {path}: {value}");
        }
        value
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn unchunk(reader: &mut impl BufRead) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        out.extend_from_slice(&chunk[..size]);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (value(*c) as u32) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
