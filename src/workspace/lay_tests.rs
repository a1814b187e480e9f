//! A property test: random trees of files, directories and links (absolute, relative, `..`,
//! loops) laid over each other and collected as artifacts never change anything outside the
//! destination, and give what an overlay of them would show.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::pipeline::ArtifactPath;
use crate::workspace::{collect_artifacts, lay_layers};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(String),
    Link(PathBuf),
    Dir(BTreeMap<String, Node>),
}

/// xorshift64: deterministic, so a failing case can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

const NAMES: [&str; 4] = ["a", "b", "out", "x"];

fn random_tree(rng: &mut Rng, depth: u32, outside: &Path) -> BTreeMap<String, Node> {
    let mut entries = BTreeMap::new();
    for _ in 0..rng.next(4) + 1 {
        let name = NAMES[rng.next(NAMES.len() as u64) as usize].to_string();
        let node = match rng.next(if depth == 0 { 2 } else { 3 }) {
            0 => Node::File(format!("content {}", rng.next(1000))),
            1 => Node::Link(match rng.next(7) {
                0 => outside.to_path_buf(),
                1 => outside.join("canary"),
                2 => PathBuf::from("../../outside"),
                3 => PathBuf::from(".."),
                4 => PathBuf::from(&name), // a link to itself
                5 => PathBuf::from("/"),
                _ => PathBuf::from(NAMES[rng.next(NAMES.len() as u64) as usize]),
            }),
            _ => Node::Dir(random_tree(rng, depth - 1, outside)),
        };
        entries.insert(name, node);
    }
    entries
}

fn write(dir: &Path, tree: &BTreeMap<String, Node>) {
    fs::create_dir_all(dir).unwrap();
    for (name, node) in tree {
        let path = dir.join(name);
        match node {
            Node::File(text) => fs::write(&path, text).unwrap(),
            Node::Link(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            Node::Dir(children) => write(&path, children),
        }
    }
}

/// Reads a tree back without following any link.
fn read(dir: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let node = if kind.is_symlink() {
            Node::Link(fs::read_link(entry.path()).unwrap())
        } else if kind.is_dir() {
            Node::Dir(read(&entry.path()))
        } else {
            Node::File(fs::read_to_string(entry.path()).unwrap())
        };
        out.insert(entry.file_name().into_string().unwrap(), node);
    }
    out
}

/// What an overlay shows: directories merge, anything else hides what is below.
fn overlay(below: &mut BTreeMap<String, Node>, above: &BTreeMap<String, Node>) {
    for (name, node) in above {
        match (below.get_mut(name), node) {
            (Some(Node::Dir(low)), Node::Dir(high)) => overlay(low, high),
            _ => {
                below.insert(name.clone(), node.clone());
            }
        }
    }
}

/// The node at `rel`, reached through directories only.
fn at<'a>(tree: &'a BTreeMap<String, Node>, rel: &str) -> Option<&'a Node> {
    let mut parts = rel.split('/').peekable();
    let mut level = tree;
    while let Some(part) = parts.next() {
        let node = level.get(part)?;
        if parts.peek().is_none() {
            return Some(node);
        }
        let Node::Dir(children) = node else {
            return None;
        };
        level = children;
    }
    None
}

/// Every path below `dir` with its kind, size and mode, links not followed.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            format!("dir {:o}", meta.permissions().mode())
        } else {
            format!(
                "file {:o} {}",
                meta.permissions().mode(),
                fs::read_to_string(&path).unwrap()
            )
        };
        out.push((path, what));
    }
    out.sort();
    out
}

#[test]
fn laying_random_trees_never_writes_outside_and_matches_an_overlay() {
    for seed in 1..=300u64 {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("canary"), "untouched").unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let layers: Vec<PathBuf> = (0..rng.next(3) + 2)
            .map(|i| {
                let layer = base.path().join("layers").join(i.to_string());
                write(&layer, &random_tree(&mut rng, 3, &outside));
                layer
            })
            .collect();
        let before = fingerprint(base.path());

        let ws = base.path().join("ws");
        lay_layers(&layers, &ws).unwrap();
        let dest = base.path().join("dest");
        let paths = ["out", "a/b", "out/x/a", "x/**/a", "*/out"];
        let artifacts: Vec<ArtifactPath> = paths
            .iter()
            .map(|p| ArtifactPath::parse(p).unwrap())
            .collect();
        let missing = collect_artifacts(&ws, &artifacts, &dest).unwrap();

        let mut after = fingerprint(base.path());
        after.retain(|(p, _)| !p.starts_with(&ws) && !p.starts_with(&dest));
        assert_eq!(before, after, "seed {seed}: something outside changed");

        let mut expected = BTreeMap::new();
        for layer in &layers {
            overlay(&mut expected, &read(layer));
        }
        assert_eq!(
            read(&ws),
            expected,
            "seed {seed}: not what an overlay shows"
        );
        for plain in ["out", "a/b", "out/x/a"] {
            let want = at(&expected, plain);
            assert_eq!(
                missing.contains(&plain.to_string()),
                want.is_none(),
                "seed {seed}: {plain}"
            );
            if let Some(want) = want {
                let got = at(&read(&dest), plain).cloned();
                assert_eq!(got.as_ref(), Some(want), "seed {seed}: artifact {plain}");
            }
        }
    }
}

#[test]
fn a_directory_laid_over_a_link_replaces_the_link() {
    let base = tempfile::tempdir().unwrap();
    let host = base.path().join("host");
    fs::create_dir(&host).unwrap();
    let (a, b, ws) = (
        base.path().join("a"),
        base.path().join("b"),
        base.path().join("ws"),
    );
    fs::create_dir(&a).unwrap();
    std::os::unix::fs::symlink(&host, a.join("out")).unwrap();
    fs::create_dir_all(b.join("out")).unwrap();
    fs::write(b.join("out/pipe.yml"), "overwritten").unwrap();
    lay_layers(&[a, b], &ws).unwrap();
    assert_eq!(
        fs::read_dir(&host).unwrap().count(),
        0,
        "wrote through the link"
    );
    assert!(fs::symlink_metadata(ws.join("out")).unwrap().is_dir());
    assert_eq!(
        fs::read_to_string(ws.join("out/pipe.yml")).unwrap(),
        "overwritten"
    );
}

#[test]
fn set_id_bits_are_not_handed_on() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("tool");
    fs::write(&file, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o4755)).unwrap();
    let dest = tempfile::tempdir().unwrap();
    lay(src.path(), dest.path(), Path::new("tool")).unwrap();
    let mode = fs::metadata(dest.path().join("tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}
