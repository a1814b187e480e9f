//! A private PostgreSQL for tests (Debian's `postgresql`): one cluster per test process, made
//! with `initdb` in a folder of its own and listening on a loopback port, run as `postgres` when
//! the tests run as root (PostgreSQL refuses root). Each test gets a database of its own, so no
//! test sees another's rows. The server dies with the test process; the next test process
//! removes the folders that dead ones left.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

const PREFIX: &str = "pipe-test-pg-";

/// A database of the test's own.
pub struct TestDb {
    pub url: String,
}

/// The cluster's address, started on first use.
fn cluster() -> &'static str {
    static CLUSTER: OnceLock<String> = OnceLock::new();
    CLUSTER.get_or_init(start)
}

/// A new, empty database in this process's cluster.
pub fn database() -> TestDb {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = cluster();
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let mut admin = postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls)
        .expect("connect to the test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    TestDb {
        url: format!("{base}/{name}"),
    }
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|b| b.join("initdb").is_file())
        .expect("PostgreSQL's server is not installed (Debian: apt-get install postgresql)")
}

/// The user the server runs as: `postgres` when we are root, else ourselves.
fn server_user() -> Option<nix::unistd::User> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    Some(
        nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .expect("no `postgres` user to run the test cluster as"),
    )
}

/// A command run as the server's user, killed (SIGQUIT: PostgreSQL's immediate shutdown) when
/// the thread that started it ends.
fn as_server(program: PathBuf, user: Option<&nix::unistd::User>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    let ids = user.map(|u| (u.uid, u.gid));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = ids {
                nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
                nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
                nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
            }
            // After setuid, which clears it.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGQUIT)
                .map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Folders of test processes that are gone.
fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `PID` or, for a test's own server, `PID-N`.
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .map(|rest| rest.split('-').next().unwrap_or(rest))
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> String {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
    let (data, port) = init(&dir);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (data_, dir_) = (data.clone(), dir.clone());
    // The server is the child of a thread that lives as long as the process: a test's thread
    // would take it down when that test ends.
    std::thread::spawn(move || match server(&data_, &dir_, port).spawn() {
        Ok(mut child) => {
            let _ = ready_tx.send(Ok(()));
            let _ = child.wait();
        }
        Err(e) => {
            let _ = ready_tx.send(Err(e.to_string()));
        }
    });
    ready_rx.recv().unwrap().expect("start postgres");
    let base = format!("postgres://pipe@127.0.0.1:{port}");
    wait_ready(&base, &dir);
    base
}

/// A new cluster in `dir` (emptied first), owned by the server's user; its data folder and a
/// free loopback port for it.
fn init(dir: &Path) -> (PathBuf, u16) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let user = server_user();
    if let Some(u) = &user {
        nix::unistd::chown(dir, Some(u.uid), Some(u.gid)).unwrap();
    }
    let data = dir.join("data");
    let out = as_server(bin_dir().join("initdb"), user.as_ref())
        .args([
            "--auth=trust",
            "--username=pipe",
            "--encoding=UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    (data, port)
}

/// The server of the cluster at `data`, on `port`, logging into `dir`.
fn server(data: &Path, dir: &Path, port: u16) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let mut cmd = as_server(bin_dir().join("postgres"), server_user().as_ref());
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "max_connections=400", "-c", "full_page_writes=off"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    cmd
}

/// Waits until the server at `base` takes a connection.
fn wait_ready(base: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls).is_err() {
        assert!(
            Instant::now() < deadline,
            "the test cluster did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server of a test's own, which the test stops and starts again on the same port: a
/// database restarted under what uses it. Dies with the test's thread (or when dropped), and
/// its folder with it.
pub struct Server {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
    /// A database of the server, `pipe`.
    pub url: String,
}

impl Server {
    pub fn start() -> Server {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // Named after this process too, so that the next test process removes it if this dies.
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{n}", std::process::id()));
        let (data, port) = init(&dir);
        let base = format!("postgres://pipe@127.0.0.1:{port}");
        let mut server = Server {
            url: format!("{base}/pipe"),
            dir,
            data,
            port,
            child: None,
        };
        server.up();
        let mut admin = postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls)
            .expect("connect to the test's server");
        admin.batch_execute("CREATE DATABASE pipe").unwrap();
        server
    }

    /// Starts the server again, on the same port, and waits until it takes connections.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = server(&self.data, &self.dir, self.port)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        wait_ready(
            &format!("postgres://pipe@127.0.0.1:{}", self.port),
            &self.dir,
        );
    }

    /// Stops the server (a fast shutdown: sessions are ended, nothing committed is lost) and
    /// waits until it is gone.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
