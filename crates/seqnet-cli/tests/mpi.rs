//! `seqnet train --execution-environment parallel` under `mpirun` (feature
//! `mpi`; needs Open MPI's `mpirun` on the PATH, which `.ci/run` installs):
//! N processes train the weights one process trains, a checkpoint resumes
//! with another process count, and a killed rank or SIGUSR1 stops the job
//! with a checkpoint that resumes.

#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{tmp, vowels, BIN};

/// Every learnable and statistic of a model file, by name, as f32 values.
fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    common::weights(path)
        .into_iter()
        .map(|(n, bytes)| {
            let v = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, v)
        })
        .collect()
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
    network_of(dir, 24)
}

/// [`network`] with `hidden` LSTM units.
fn network_of(dir: &Path, hidden: usize) -> PathBuf {
    let net = dir.join("net.json");
    common::new_net(&net, &format!("seq2label --hidden {hidden}"));
    net
}

/// `seqnet` under `mpirun -np ranks` (alone without mpirun when `ranks` is
/// 0), one compute thread per process (the ranks share the machine's cores).
fn seqnet(ranks: usize) -> Command {
    let mut c = if ranks == 0 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--allow-run-as-root", "--oversubscribe", "-np"]);
        c.arg(ranks.to_string()).arg(BIN);
        c
    };
    c.env("RAYON_NUM_THREADS", "1");
    c
}

/// `seqnet train` on Japanese Vowels with `ranks` processes (see [`seqnet`]).
fn train(ranks: usize, net: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = seqnet(ranks);
    c.args(["train", "--net"]).arg(net);
    c.args(["--data", &vowels("JapaneseVowels_TRAIN.ts")]);
    c.arg("--out").arg(out);
    c.args(["--shuffle", "every-epoch", "--seed", "7", "--quiet"]);
    c.args([
        "--execution-environment",
        if ranks == 0 { "cpu" } else { "parallel" },
    ]);
    c.args(extra);
    c
}

/// `seqnet train --resume checkpoint` to `epochs` epochs with `ranks`
/// processes (see [`seqnet`]), writing `dir/resumed.safetensors`, which it
/// returns; checkpoints go to `dir/ck2`.
fn resume(ranks: usize, checkpoint: &Path, epochs: usize, dir: &Path) -> PathBuf {
    let resumed = dir.join("resumed.safetensors");
    let mut c = seqnet(ranks);
    c.args(["train", "--resume"]).arg(checkpoint);
    c.args(["--data", &vowels("JapaneseVowels_TRAIN.ts")]);
    c.arg("--out").arg(&resumed);
    c.args(["--epochs", &epochs.to_string(), "--quiet"]);
    c.arg("--checkpoint-dir").arg(dir.join("ck2"));
    if ranks > 0 {
        c.args(["--execution-environment", "parallel"]);
    }
    ok(c.output().unwrap());
    assert!(resumed.is_file());
    resumed
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
    let resumed = resume(2, &checkpoint, 10, &dir);
    let d = max_relative_difference(&resumed, &one);
    assert!(
        d <= 1e-4,
        "resumed on 2 ranks differs from one process by {d}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--shard-solver` (the ring reduce-scatter and all-gather over MPI
/// point-to-point messages): 2 and 3 ranks train one process's weights,
/// and a checkpoint of 3 sharded ranks, which holds the whole solver state,
/// resumes in one process to them.
#[test]
fn sharded_solver_ranks_train_the_weights_of_one_process() {
    let dir = tmp("sharded");
    // 128 units: the LSTM's 4·128×128 recurrent weights are sharded.
    let net = network_of(&dir, 128);
    let four = ["--epochs", "4", "--mini-batch-size", "16"];
    let four = [&four[..], &["--gradient-threshold", "0.5"]].concat();
    let one = dir.join("one.safetensors");
    ok(train(0, &net, &one, &four).output().unwrap());
    let sharded = [&four[..], &["--shard-solver"]].concat();
    for ranks in [2, 3] {
        let out = dir.join(format!("{ranks}.safetensors"));
        ok(train(ranks, &net, &out, &sharded).output().unwrap());
        let d = max_relative_difference(&out, &one);
        assert!(
            d <= 1e-4,
            "{ranks} sharded ranks differ from one process by {d}"
        );
    }
    let ck = dir.join("ck");
    let mut half = sharded.clone();
    half[1] = "2";
    half.extend(["--checkpoint-dir", ck.to_str().unwrap()]);
    ok(train(3, &net, &dir.join("half.safetensors"), &half)
        .output()
        .unwrap());
    let resumed = resume(0, &ck.join("checkpoint_epoch0002.safetensors"), 4, &dir);
    let d = max_relative_difference(&resumed, &one);
    assert!(d <= 1e-4, "resumed in one process differs by {d}");
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

/// The epoch number of a `checkpoint_epochNNNN` file; `None` for others.
fn checkpoint_epoch(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    stem.strip_prefix("checkpoint_epoch")?.parse().ok()
}

/// A 2-rank training job of 2000 epochs, killed when the test ends, however
/// it ends.
struct Job {
    mpirun: Child,
    /// Its checkpoint folder.
    checkpoints: PathBuf,
    /// The model it would write at its end.
    out: PathBuf,
}

impl Job {
    /// Starts the job in `dir` and returns once it has written its first
    /// checkpoint (by then every rank has its signal handler).
    fn start(dir: &Path) -> Job {
        let net = network(dir);
        let checkpoints = dir.join("ck");
        let out = dir.join("never.safetensors");
        let mut c = train(
            2,
            &net,
            &out,
            &["--epochs", "2000", "--mini-batch-size", "27"],
        );
        c.arg("--checkpoint-dir").arg(&checkpoints);
        let mpirun = c
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let job = Job {
            mpirun,
            checkpoints,
            out,
        };
        let start = Instant::now();
        while job.checkpoints().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no checkpoint written"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        job
    }

    /// The process of MPI rank `rank` among `mpirun`'s descendants.
    fn rank_process(&self, rank: usize) -> Option<u32> {
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        descendants(self.mpirun.id()).into_iter().find(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
        })
    }

    /// Sends `signal` (`kill -signal`) to process `pid`.
    fn signal(pid: u32, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits at most a minute for the job to end (`what` names what should
    /// have ended it); returns its exit status and standard error.
    fn end(&mut self, what: &str) -> (ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.mpirun.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the job went on after {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.mpirun.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(!self.out.exists(), "no model from a stopped job: {stderr}");
        (status, stderr)
    }

    /// The checkpoint files written so far, sorted by name.
    fn checkpoints(&self) -> Vec<PathBuf> {
        checkpoints(&self.checkpoints)
    }

    /// The last finished epoch with a checkpoint, and that checkpoint.
    fn last_epoch(&self) -> (usize, PathBuf) {
        let epochs = self.checkpoints().into_iter();
        let epochs = epochs.filter_map(|p| Some((checkpoint_epoch(&p)?, p)));
        epochs.max().expect("an epoch checkpoint")
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.mpirun.kill();
        let _ = self.mpirun.wait();
    }
}

#[test]
fn a_killed_rank_stops_every_rank_and_the_checkpoint_stays_intact() {
    let dir = tmp("killed");
    let mut job = Job::start(&dir);
    let victim = job.rank_process(1).expect("rank 1's process");
    Job::signal(victim, "9");
    let (status, stderr) = job.end("rank 1 was killed");
    assert!(!status.success());
    eprintln!("the job said: {stderr}");
    // The checkpoints left are whole: resume from the latest in one process.
    let (last, latest) = job.last_epoch();
    resume(0, &latest, last + 1, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGUSR1 to `mpirun` (which forwards it to every rank) stops every rank
/// after the same mini-batch: the job ends with 130, rank 0 writes the
/// interrupted run's checkpoint and says how to resume, and it resumes.
#[test]
fn sigusr1_to_mpirun_stops_every_rank_with_a_checkpoint() {
    let dir = tmp("sigusr1");
    let mut job = Job::start(&dir);
    Job::signal(job.mpirun.id(), "USR1");
    let (status, stderr) = job.end("SIGUSR1");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("training interrupted after iteration"),
        "{stderr}"
    );
    assert!(stderr.contains("resume with:"), "{stderr}");
    let interrupted = job
        .checkpoints()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("checkpoint_iteration"))
        .expect("the interrupted run's checkpoint");
    // The interrupted epoch is at most one after the last finished one.
    resume(0, &interrupted, job.last_epoch().0 + 2, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
