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
        let Some(pid) = name.strip_prefix(PREFIX) else {
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
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let user = server_user();
    if let Some(u) = &user {
        nix::unistd::chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
    }
    let bin = bin_dir();
    let data = dir.join("data");
    let out = as_server(bin.join("initdb"), user.as_ref())
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
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (data_, dir_) = (data.clone(), dir.clone());
    // The server is the child of a thread that lives as long as the process: a test's thread
    // would take it down when that test ends.
    std::thread::spawn(move || {
        let child = as_server(bin.join("postgres"), user.as_ref())
            .arg("-D")
            .arg(&data_)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir_)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=400", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let _ = child.wait();
    });
    ready_rx.recv().unwrap().expect("start postgres");
    let base = format!("postgres://pipe@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Ready once it takes a connection.
    while postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls).is_err() {
        assert!(
            Instant::now() < deadline,
            "the test cluster did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    base
}
