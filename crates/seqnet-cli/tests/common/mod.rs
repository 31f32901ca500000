//! What every test of the `seqnet` binary needs: the binary, the
//! repository's data, fresh folders, and runs that must succeed or fail
//! with one line.
//!
//! Each test binary uses a part of it, hence `dead_code` allowed here.
#![allow(dead_code)]

use safetensors::SafeTensors;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `seqnet` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_seqnet");

/// The repository's root folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the Japanese Vowels set shipped in `data/japanese_vowels`
/// (`JapaneseVowels_TRAIN.ts`, `JapaneseVowels_TEST.ts`).
pub fn vowels(file: &str) -> String {
    p(&root().join("data/japanese_vowels").join(file))
}

/// A fresh, empty folder for one test, named after the test binary, the
/// process and `test`.
pub fn tmp(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "seqnet-{}-{}-{test}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A path as an argument.
pub fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `seqnet args…` to the end.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Standard output of a run, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error of a run, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and expects success; returns standard output and standard error.
pub fn ok_both(args: &[&str]) -> (String, String) {
    let o = run(args);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "seqnet {args:?} failed: {err}\n{out}");
    (out, err)
}

/// Runs and expects success; returns standard output.
pub fn ok(args: &[&str]) -> String {
    ok_both(args).0
}

/// Runs and expects what every user error gives: exit code 1 (2 for a
/// usage error clap reports; never a panic's 101), and one line on standard
/// error starting with `error: `. Returns that line.
pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "seqnet {args:?}: exit {:?}: {err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "seqnet {args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "seqnet {args:?}: not one line: {err}");
    assert!(lines[0].starts_with("error: "), "seqnet {args:?}: {err}");
    lines[0].to_string()
}

/// Writes `text` to `path`; returns the path as an argument.
pub fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    p(path)
}

/// Every tensor of a model file except those of training state, by name,
/// as raw bytes (for comparisons to the bit).
pub fn weights(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", p(path)));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut w: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("training."))
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    w.sort();
    w
}

/// Writes the network of `seqnet new <template…>` to `path` (`template`:
/// the template and its flags, separated by spaces, e.g.
/// `"seq2seq-class --features 1 --classes 2"`); returns the path as an
/// argument.
pub fn new_net(path: &Path, template: &str) -> String {
    let mut args = vec!["new"];
    args.extend(template.split_whitespace());
    write(path, &ok(&args))
}

/// Width and height of a PNG file, from its header.
pub fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", p(path)));
    assert!(bytes.starts_with(b"\x89PNG"), "{} is no PNG", p(path));
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

/// The arguments of `seqnet train --net net --data data --out out extra…`.
pub fn train_args<'a>(
    net: &'a str,
    data: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["train", "--net", net, "--data", data, "--out", out];
    args.extend_from_slice(extra);
    args
}
