//! `cache:`: paths restored before a job's script and saved after it passes, in a cache folder
//! outside the project; a fallback prefix; two saves of one key at once; poisoned entries
//! refused; a download that happens once over two runs; `pipe cache list|clear`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{Project, Ran};

/// The test's own cache folder, so tests never share entries; in pipe's state folder, which
/// runs do not snapshot.
fn cache_dir(project: &Project) -> String {
    project
        .path()
        .join(".pipe/test-cache")
        .display()
        .to_string()
}

/// With `--no-reuse`: a reused job would neither restore nor save its cache.
fn run_local(project: &Project) -> Ran {
    let dir = cache_dir(project);
    let ran = project.pipe(&[
        "run",
        "--backend",
        "local",
        "--no-reuse",
        "--cache-dir",
        &dir,
    ]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    ran
}

fn listed(project: &Project) -> Vec<serde_json::Value> {
    let dir = cache_dir(project);
    let ran = project.pipe(&["cache", "list", "--cache-dir", &dir, "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    ran.json_events()
}

/// The one entry's archive, for a test to poison.
fn only_archive(project: &Project) -> PathBuf {
    let dir = Path::new(&cache_dir(project)).join(project.key());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.pop().unwrap().join("data.tar")
}

const DEPS: &str = "jobs:\n  build:\n    cache:\n      key: deps-{{ hash \"lock.txt\" }}\n      fallback_keys: [deps-]\n      paths: [deps]\n    script:\n      - if [ -f deps/lib ]; then echo \"had $(cat deps/lib)\"; else mkdir -p deps; fi\n      - cat lock.txt >> deps/lib\n";

#[test]
fn a_hit_restores_the_paths_and_an_exact_hit_saves_nothing() {
    let project = Project::new(DEPS);
    project.write("lock.txt", "one\n");
    run_local(&project);
    let first = project.log("1", "build");
    assert!(first.contains("pipe: no cache for `deps-"), "{first}");
    assert!(first.contains("pipe: cache saved as `deps-"), "{first}");
    let saved = listed(&project);
    assert_eq!(saved.len(), 1);
    assert_eq!(
        (saved[0]["run"].as_i64(), saved[0]["job"].as_str()),
        (Some(1), Some("build"))
    );
    let key = saved[0]["key"].as_str().unwrap().to_string();
    assert!(
        !project.path().join("deps").exists(),
        "nothing lands in the project"
    );

    run_local(&project);
    let second = project.log("2", "build");
    assert!(
        second.contains(&format!("pipe: cache restored from `{key}`")),
        "{second}"
    );
    assert!(second.contains("had one"), "{second}");
    assert!(
        !second.contains("saved as"),
        "an exact hit saves nothing: {second}"
    );

    let dir = cache_dir(&project);
    let table = project.pipe(&["cache", "list", "--cache-dir", &dir]);
    assert!(table.stdout.starts_with("KEY"), "{}", table.all());
    assert!(
        table.stdout.contains(&key) && table.stdout.contains("run 1 job build"),
        "{}",
        table.stdout
    );
    let typo = project.pipe(&["cache", "clear", "deps-nope", "--cache-dir", &dir]);
    assert_eq!(typo.code, 2, "{}", typo.all());
    let cleared = project.pipe(&["cache", "clear", &key, "--cache-dir", &dir]);
    assert_eq!(cleared.stdout, format!("removed cache `{key}`\n"));
    assert!(listed(&project).is_empty());
}

#[test]
fn a_changed_key_restores_the_newest_fallback_and_saves_under_the_new_key() {
    let project = Project::new(DEPS);
    project.write("lock.txt", "one\n");
    run_local(&project);
    project.write("lock.txt", "two\n");
    run_local(&project);
    let log = project.log("2", "build");
    assert!(log.contains("(a fallback for `deps-"), "{log}");
    assert!(log.contains("had one"), "{log}");
    assert!(log.contains("pipe: cache saved as `deps-"), "{log}");
    assert_eq!(listed(&project).len(), 2);
}

#[test]
fn a_failed_job_saves_nothing() {
    let project = Project::new(
        "jobs:\n  build:\n    cache: {key: k, paths: [deps]}\n    script: [mkdir deps, touch deps/x, exit 3]\n",
    );
    let dir = cache_dir(&project);
    let ran = project.pipe(&["run", "--backend", "local", "--cache-dir", &dir]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(listed(&project).is_empty());
}

/// A tiny HTTP server on loopback that counts the requests it answers.
fn package_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pkg.tar", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let body = "package contents\n";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, count)
}

#[test]
fn a_real_dependency_download_happens_once_over_two_runs() {
    let (url, downloads) = package_server();
    let project = Project::new(&format!(
        "jobs:\n  build:\n    cache: {{key: 'pkgs-{{{{ hash \"deps.txt\" }}}}', paths: [vendor]}}\n    script:\n      - mkdir -p vendor\n      - \"[ -f vendor/pkg.tar ] || wget -q -O vendor/pkg.tar {url}\"\n      - grep -q 'package contents' vendor/pkg.tar\n"
    ));
    project.write("deps.txt", "pkg 1.0\n");
    run_local(&project);
    assert_eq!(
        downloads.load(Ordering::SeqCst),
        1,
        "the first run downloads"
    );
    run_local(&project);
    assert_eq!(
        downloads.load(Ordering::SeqCst),
        1,
        "the second run uses the cache"
    );
}

#[test]
fn two_jobs_saving_one_key_at_once_leave_one_whole_entry() {
    let project = Project::new("jobs: {}\n");
    let markers = project.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    // Each job waits for the other to have written its file, so both save at about once.
    project.write(
        "pipe.yml",
        &format!("env: {{M: '{}'}}\njobs:\n  a:\n    cache: {{key: shared, paths: [deps]}}\n    script:\n      - mkdir deps && yes a | head -c 3000000 > deps/lib\n      - touch \"$M/a\"; while [ ! -e \"$M/b\" ]; do sleep 0.01; done\n  b:\n    cache: {{key: shared, paths: [deps]}}\n    script:\n      - mkdir deps && yes b | head -c 3000000 > deps/lib\n      - touch \"$M/b\"; while [ ! -e \"$M/a\" ]; do sleep 0.01; done\n", markers.display()),
    );
    run_local(&project);
    let logs = project.log("1", "a") + &project.log("1", "b");
    assert_eq!(
        logs.matches("pipe: cache saved as `shared`").count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches("another job saved it first").count(),
        1,
        "{logs}"
    );
    let archive = only_archive(&project);
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut contents = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("lib") {
            std::io::Read::read_to_end(&mut entry, &mut contents).unwrap();
        }
    }
    let whole = |c: u8| -> Vec<u8> { [c, b'\n'].repeat(1_500_000) };
    assert!(
        contents == whole(b'a') || contents == whole(b'b'),
        "one job's file, whole"
    );
}

/// Replaces the entry's archive with one holding `entries` (path or link name, link target).
fn poison(project: &Project, entries: &[(&str, Option<&str>)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(only_archive(project)).unwrap());
    for (name, target) in entries {
        let mut header = tar::Header::new_gnu();
        match target {
            Some(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
            None => {
                let data = b"planted\n";
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                // `..` as an attacker writes it: tar's own setters refuse it.
                let raw = &mut header.as_old_mut().name;
                raw[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, &data[..]).unwrap();
            }
        }
    }
    builder.finish().unwrap();
}

#[test]
fn a_poisoned_cache_is_refused_whole_and_writes_nothing_outside() {
    let project = Project::new(
        "jobs:\n  build:\n    cache: {key: k, paths: [deps]}\n    script: [mkdir -p deps, echo ok > deps/lib, ls -la deps]\n",
    );
    run_local(&project);
    let outside = project.path().join("outside");
    std::fs::create_dir(&outside).unwrap();

    // From .pipe/runs/2/jobs/build/cache-restore up into the project.
    poison(
        &project,
        &[("deps/lib", None), ("../../../../../../planted", None)],
    );
    run_local(&project);
    let log = project.log("2", "build");
    assert!(
        log.contains("pipe: cache `k` is refused and removed: entry `../../../../../../planted` goes up out of the workspace (`..`); nothing of it was restored"),
        "{log}"
    );
    assert!(!project.path().join("planted").exists());
    assert!(
        log.contains("pipe: cache saved as `k`"),
        "a clean entry replaces it: {log}"
    );

    let target = outside.display().to_string();
    poison(&project, &[("deps", Some(&target)), ("deps/planted", None)]);
    run_local(&project);
    let log = project.log("3", "build");
    assert!(
        log.contains(&format!("pipe: cache `k` is refused and removed: `deps` is a link to `{target}`, outside the workspace; nothing of it was restored")),
        "{log}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn a_job_that_links_out_of_its_workspace_saves_no_cache() {
    let project = Project::new(
        "jobs:\n  build:\n    cache: {key: k, paths: [deps]}\n    script: [mkdir deps, ln -s /etc deps/escape]\n",
    );
    run_local(&project);
    let log = project.log("1", "build");
    assert!(
        log.contains(
            "pipe: cache `k` not saved: `deps/escape` is a link to `/etc`, outside the workspace"
        ),
        "{log}"
    );
    assert!(listed(&project).is_empty());
}

#[test]
fn docker_jobs_restore_and_save_without_a_host_mount() {
    let project = Project::new(&format!(
        "image: {}\njobs:\n  build:\n    cache: {{key: 'deps-{{{{ env \"V\" }}}}', paths: [deps]}}\n    env: {{V: '1'}}\n    script:\n      - if [ -f deps/lib ]; then echo \"had $(cat deps/lib)\"; else mkdir -p deps && echo fresh > deps/lib; fi\n",
        crate::harness::IMAGE
    ));
    let dir = cache_dir(&project);
    let first = project.run_docker(&["--cache-dir", &dir]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(project
        .log("1", "build")
        .contains("pipe: cache saved as `deps-1`"));
    let second = project.run_docker(&["--no-reuse", "--cache-dir", &dir]);
    assert_eq!(second.code, 0, "{}", second.all());
    let log = project.log("2", "build");
    assert!(log.contains("pipe: cache restored from `deps-1`"), "{log}");
    assert!(log.contains("had fresh"), "{log}");
}

#[test]
fn bad_cache_settings_are_refused_where_they_are_written() {
    let ran = Project::new(
        "jobs:\n  a:\n    script: [x]\n    cache:\n      key: deps-{{ hsh \"Cargo.lock\" }}\n      paths: [../up]\n  b:\n    script: [x]\n    cache: {key: 'x-{{ matrix \"OS\" }}', paths: [t]}\n",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    let stderr = ran.stderr;
    assert!(
        stderr.contains("unknown function `hsh` (did you mean `hash`?)"),
        "{stderr}"
    );
    assert!(stderr.contains("[pipe.yml:5:12]"), "{stderr}");
    assert!(
        stderr.contains("cache path `../up` must stay inside the workspace"),
        "{stderr}"
    );
    assert!(
        stderr.contains("uses matrix value `OS`, which the job's `matrix` does not set"),
        "{stderr}"
    );
}
