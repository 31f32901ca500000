//! `seqnet train --execution-environment parallel` under `mpirun` (feature
//! `mpi`; needs Open MPI's `mpirun` on the PATH, which `.ci/run` installs):
//! N processes train the weights one process trains, a checkpoint resumes
//! with another process count, and a killed rank stops the job with the
//! last checkpoint intact.

#![cfg(feature = "mpi")]

use safetensors::SafeTensors;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_seqnet");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seqnet-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every learnable and statistic of a model file, by name, as f32 values.
fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut w: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("training."))
        .map(|(n, t)| {
            let v = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, v)
        })
        .collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// The largest difference of any array, relative to that array's largest magnitude.
fn max_relative_difference(a: &Path, b: &Path) -> f32 {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    let mut worst = 0f32;
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        let scale = vb.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let d = va
            .iter()
            .zip(vb)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        worst = worst.max(d / scale);
    }
    worst
}

/// `seqnet new seq2label` for Japanese Vowels, written to `dir/net.json`.
fn network(dir: &Path) -> PathBuf {
    let net = dir.join("net.json");
    let out = Command::new(BIN)
        .args(["new", "seq2label", "--hidden", "24"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&net, &out.stdout).unwrap();
    net
}

/// `seqnet train` on Japanese Vowels with `ranks` processes (`mpirun -np`;
/// one process without mpirun when `ranks` is 0).
fn train(ranks: usize, net: &Path, out: &Path, extra: &[&str]) -> Command {
    let data = root().join("data/japanese_vowels/JapaneseVowels_TRAIN.ts");
    let mut c = if ranks == 0 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--allow-run-as-root", "--oversubscribe", "-np"]);
        c.arg(ranks.to_string()).arg(BIN);
        c
    };
    c.args(["train", "--net"]).arg(net).arg("--data").arg(data);
    c.arg("--out").arg(out);
    c.args(["--shuffle", "every-epoch", "--seed", "7", "--quiet"]);
    c.args([
        "--execution-environment",
        if ranks == 0 { "cpu" } else { "parallel" },
    ]);
    // One thread per process: the ranks share the machine's cores.
    c.env("RAYON_NUM_THREADS", "1");
    c.args(extra);
    c
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn ranks_train_the_weights_of_one_process_and_resume_with_another_count() {
    let dir = tmp("equal");
    let net = network(&dir);
    let ten = ["--epochs", "10", "--mini-batch-size", "27"];
    let one = dir.join("one.safetensors");
    ok(train(0, &net, &one, &ten).output().unwrap());

    let two = dir.join("two.safetensors");
    let o = ok(train(2, &net, &two, &ten).output().unwrap());
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.matches("model written").count(),
        1,
        "rank 0 alone reports: {text}"
    );
    let d = max_relative_difference(&two, &one);
    assert!(d <= 1e-4, "2 ranks differ from one process by {d}");
    // Gradients summed in small buckets during backward, on a
    // communication thread: the same sums, so exactly the same weights.
    let bucketed = dir.join("bucketed.safetensors");
    let small = [&ten[..], &["--gradient-bucket-size", "0.001"]].concat();
    ok(train(2, &net, &bucketed, &small).output().unwrap());
    let d = max_relative_difference(&bucketed, &two);
    assert_eq!(d, 0.0, "2 ranks with buckets differ from 2 ranks without");

    // 27 does not split evenly into 3 shares, nor 270 into mini-batches of 16.
    let three = dir.join("three.safetensors");
    let sixteen = ["--epochs", "10", "--mini-batch-size", "16"];
    ok(train(3, &net, &three, &sixteen).output().unwrap());
    let three_bucketed = dir.join("three_bucketed.safetensors");
    let small16 = [&sixteen[..], &["--gradient-bucket-size", "0.001"]].concat();
    ok(train(3, &net, &three_bucketed, &small16).output().unwrap());
    let d = max_relative_difference(&three_bucketed, &three);
    assert!(
        d <= 1e-6,
        "3 ranks with buckets differ from 3 without by {d}"
    );
    let one16 = dir.join("one16.safetensors");
    ok(train(0, &net, &one16, &sixteen).output().unwrap());
    let d = max_relative_difference(&three, &one16);
    assert!(d <= 1e-4, "3 ranks differ from one process by {d}");

    // 5 epochs on 3 ranks, resumed on 2 to 10 epochs: one process's 10 epochs.
    let ck = dir.join("ck");
    let half = dir.join("half.safetensors");
    let mut first = ten.to_vec();
    first[1] = "5";
    first.extend(["--checkpoint-dir", ck.to_str().unwrap()]);
    ok(train(3, &net, &half, &first).output().unwrap());
    let checkpoint = ck.join("checkpoint_epoch0005.safetensors");
    assert!(checkpoint.is_file());
    let resumed = dir.join("resumed.safetensors");
    let data = root().join("data/japanese_vowels/JapaneseVowels_TRAIN.ts");
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        "2",
        BIN,
        "train",
        "--resume",
    ])
    .arg(&checkpoint)
    .arg("--data")
    .arg(&data)
    .arg("--out")
    .arg(&resumed)
    .args([
        "--epochs",
        "10",
        "--quiet",
        "--execution-environment",
        "parallel",
    ])
    .arg("--checkpoint-dir")
    .arg(dir.join("ck2"))
    .env("RAYON_NUM_THREADS", "1");
    ok(c.output().unwrap());
    let d = max_relative_difference(&resumed, &one);
    assert!(
        d <= 1e-4,
        "resumed on 2 ranks differs from one process by {d}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process ids of `pid`'s descendants.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The parent id is the second field after the parenthesized name.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            parents.push((p, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let cur = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

/// The process of MPI rank `rank` among `mpirun`'s descendants.
fn rank_process(mpirun: &Child, rank: usize) -> Option<u32> {
    descendants(mpirun.id()).into_iter().find(|p| {
        std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
            env.split(|&b| b == 0)
                .any(|v| v == format!("OMPI_COMM_WORLD_RANK={rank}").as_bytes())
        })
    })
}

/// A job killed when the test ends, however it ends.
struct Job(Child);

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The checkpoint files in `dir`, sorted by name.
fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    found.sort();
    found
}

#[test]
fn a_killed_rank_stops_every_rank_and_the_checkpoint_stays_intact() {
    let dir = tmp("killed");
    let net = network(&dir);
    let ck = dir.join("ck");
    let out = dir.join("never.safetensors");
    let mut job = Job(train(
        2,
        &net,
        &out,
        &[
            "--epochs",
            "2000",
            "--mini-batch-size",
            "27",
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap());
    let start = Instant::now();
    while checkpoints(&ck).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let victim = rank_process(&job.0, 1).expect("rank 1's process");
    let killed = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = job.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job went on without rank 1"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    assert!(!out.exists(), "no model from a failed job");
    // The checkpoints left are whole: resume from the latest in one process.
    let mut stderr = String::new();
    if let Some(mut e) = job.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    eprintln!("the job said: {stderr}");
    let left = checkpoints(&ck);
    let latest = left.last().expect("a checkpoint stays");
    let data = root().join("data/japanese_vowels/JapaneseVowels_TRAIN.ts");
    let resumed = dir.join("resumed.safetensors");
    let epochs = latest
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("checkpoint_epoch")
        .parse::<usize>()
        .unwrap()
        + 1;
    ok(Command::new(BIN)
        .args(["train", "--resume"])
        .arg(latest)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&resumed)
        .args(["--epochs", &epochs.to_string(), "--quiet"])
        .arg("--checkpoint-dir")
        .arg(dir.join("ck2"))
        .output()
        .unwrap());
    assert!(resumed.is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGUSR1 to `mpirun` (which forwards it to every rank) stops every rank
/// after the same mini-batch: the job ends with 130, rank 0 writes the
/// interrupted run's checkpoint and says how to resume, and it resumes.
#[test]
fn sigusr1_to_mpirun_stops_every_rank_with_a_checkpoint() {
    let dir = tmp("sigusr1");
    let net = network(&dir);
    let ck = dir.join("ck");
    let out = dir.join("never.safetensors");
    let mut job = Job(train(
        2,
        &net,
        &out,
        &[
            "--epochs",
            "2000",
            "--mini-batch-size",
            "27",
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap());
    // After the first checkpoint, every rank has its handler.
    let start = Instant::now();
    while checkpoints(&ck).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-USR1", &job.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = job.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job did not stop on SIGUSR1"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = job.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("training interrupted after iteration"),
        "{stderr}"
    );
    assert!(stderr.contains("resume with:"), "{stderr}");
    assert!(!out.exists(), "no model from an interrupted run");
    let interrupted = checkpoints(&ck)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("checkpoint_iteration"))
        .expect("the interrupted run's checkpoint");
    // The interrupted epoch is at most one after the last finished one.
    let finished = checkpoints(&ck)
        .iter()
        .filter_map(|p| {
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            stem.strip_prefix("checkpoint_epoch")?.parse::<usize>().ok()
        })
        .max()
        .expect("an epoch checkpoint");
    let data = root().join("data/japanese_vowels/JapaneseVowels_TRAIN.ts");
    let resumed = dir.join("resumed.safetensors");
    ok(Command::new(BIN)
        .args(["train", "--resume"])
        .arg(&interrupted)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&resumed)
        .args(["--epochs", &(finished + 2).to_string(), "--quiet"])
        .arg("--checkpoint-dir")
        .arg(dir.join("ck2"))
        .output()
        .unwrap());
    assert!(resumed.is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
