//! The Docker engine going away mid-run is the environment's failure, not a job's: pipe says
//! so, exits with the no-engine code, records the run as interrupted, and the next run of the
//! project sweeps what the dead run left on the engine.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::harness::*;

/// A socket that forwards to the real engine until it is cut: to pipe, an engine that stops
/// answering, while the real one (and what pipe made on it) stays for the test to look at.
struct EngineProxy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<UnixStream>>>,
}

impl EngineProxy {
    fn start() -> EngineProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (cut, streams) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let (accept_cut, accept_streams) = (Arc::clone(&cut), Arc::clone(&streams));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_cut.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { break };
                let engine = UnixStream::connect("/var/run/docker.sock").unwrap();
                let kept: &Mutex<Vec<UnixStream>> = &accept_streams;
                let mut kept = kept.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(engine.try_clone().unwrap());
                pump(client.try_clone().unwrap(), engine.try_clone().unwrap());
                pump(engine, client);
            }
        });
        EngineProxy {
            _dir: dir,
            path,
            cut,
            streams,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The engine stops answering: no new connection, every open one closed.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path); // wakes the accepting thread to see the cut
        std::fs::remove_file(&self.path).unwrap();
        for stream in self.streams.lock().unwrap().iter() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn pump(mut from: UnixStream, mut to: UnixStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn the_engine_stopping_mid_run_exits_3_records_an_interruption_and_the_next_run_sweeps() {
    docker_image();
    let proxy = EngineProxy::start();
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  a: {{script: ['echo engine-test-ready', 'sleep 300']}}
  b: {{needs: [], script: ['echo b']}}
"
    ));
    let mut command = project.command(&["run", "--pull", "never"]);
    command.env("DOCKER_HOST", proxy.host());
    let (child, _) = spawn_command_until(command, "engine-test-ready");
    let pid = child.id();
    proxy.cut();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the Docker engine stopped answering during the run"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let show = project.pipe(&["show", "1"]);
    assert!(show.stdout.contains("interrupted"), "{}", show.stdout);
    assert!(
        show.stdout.contains("interrupted by its environment"),
        "{}",
        show.stdout
    );
    let filter = format!("label=dev.pipe.pid={pid}");
    assert!(
        !docker(&["ps", "-aq", "--filter", &filter])
            .trim()
            .is_empty(),
        "the dead run's container is still on the engine, as after a real outage"
    );

    let next = project.run_docker(&["--job", "b"]);
    assert_eq!(next.code, 0, "{}", next.all());
    assert_no_leftovers(pid);
}
