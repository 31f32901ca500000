//! Ctrl-C during `seqnet train` finishes the current iteration, writes a
//! checkpoint and says how to resume; `seqnet train --resume` then ends with the
//! same weights, bit for bit, as a run that was never interrupted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{root, weights, BIN};

#[test]
fn ctrl_c_writes_a_checkpoint_and_resume_matches_an_uninterrupted_run() {
    let dir = std::env::temp_dir().join(format!("seqnet-cli-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = root().join("data/japanese_vowels/JapaneseVowels_TRAIN.ts");
    let net = dir.join("net.json");
    let out = Command::new(BIN)
        .args(["new", "seq2label", "--hidden", "60"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&net, &out.stdout).unwrap();
    let train = |out: &Path, extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args([
            "train",
            "--net",
            net.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        c.args([
            "--epochs",
            "250",
            "--mini-batch-size",
            "27",
            "--shuffle",
            "every-epoch",
            "--seed",
            "4",
            "--quiet",
            // Every epoch's checkpoint stays, so that the first one is
            // there to be seen however fast the second one follows.
            "--checkpoint-keep",
            "all",
        ]);
        c.args(extra);
        c
    };

    let whole = dir.join("whole.safetensors");
    let done = train(&whole, &[]).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let part = dir.join("part.safetensors");
    let child = train(&part, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first epoch's checkpoint shows that training is under way.
    let first = dir.join("part.safetensors.checkpoints/checkpoint_epoch0001.safetensors");
    let start = Instant::now();
    while !first.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let interrupted = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&interrupted.stderr);
    assert_eq!(interrupted.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let hint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .unwrap_or_else(|| panic!("no resume hint: {stderr}"));
    assert!(hint.starts_with("seqnet train --resume "), "{hint}");
    assert!(!part.exists(), "no model is written for an interrupted run");

    // Resume exactly as the message says.
    let args: Vec<&str> = hint.split_whitespace().skip(2).collect();
    let resumed = Command::new(BIN)
        .arg("train")
        .args(&args)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        weights(&part),
        weights(&whole),
        "resumed weights differ from the uninterrupted run's"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
