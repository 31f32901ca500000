//! Reading a folder datastore larger than a memory bound keeps the process's
//! resident memory under that bound: the read-ahead queue is bounded.
//!
//! This file holds one test so that it runs alone in its process (other
//! tests' allocations would blur the resident-memory figure).

use ndarray_npy::WriteNpyExt;
use seqnet_data::*;
use std::io::{BufWriter, Write};
use std::sync::Arc;

/// The process's resident memory in bytes (VmRSS of /proc/self/status).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

const MB: u64 = 1024 * 1024;
/// 50 files of 4 MB each (200 MB): `[1024, 1024]` float32 sequences.
const FILES: usize = 50;
const STEPS: usize = 1024;
const CHANNELS: usize = 1024;

#[test]
fn folder_datastore_streams_in_bounded_memory() {
    let Some(start) = resident_bytes() else {
        eprintln!("no /proc/self/status: skipping the resident-memory check");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("file,label\n");
    // One reused buffer, so writing adds no resident memory per file.
    let mut a = ndarray::Array2::<f32>::zeros((STEPS, CHANNELS));
    for i in 0..FILES {
        a.fill(i as f32);
        let name = format!("seq{i:03}.npy");
        let mut w = BufWriter::new(std::fs::File::create(dir.path().join(&name)).unwrap());
        a.write_npy(&mut w).unwrap();
        w.flush().unwrap();
        csv.push_str(&format!(
            "{name},{}\n",
            if i % 2 == 0 { "even" } else { "odd" }
        ));
    }
    drop(a);
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    let data_bytes = (FILES * STEPS * CHANNELS * 4) as u64;

    let read_ahead = 4;
    let ds = FolderDatastore::open_with(
        dir.path(),
        FolderOptions {
            classes: None,
            read_ahead,
        },
    )
    .unwrap();
    let ds: Arc<dyn Datastore> = Arc::new(ds);
    // Bound: what the queue (read_ahead), the reader (1) and the consumer
    // hold — a mini-batch of 2 observations and its batched copy (4) — plus
    // 48 MB of slack for the allocator and the test harness.
    let per_obs = (STEPS * CHANNELS * 4) as u64;
    let bound = (read_ahead as u64 + 5) * per_obs + 48 * MB;
    assert!(
        bound < data_bytes / 2,
        "the test must read more than twice its bound"
    );

    let began = std::time::Instant::now();
    let mut peak = 0u64;
    let mut seen = 0usize;
    // Reversed order: the consumer really does ask for its own order.
    let order: Vec<usize> = (0..FILES).rev().collect();
    for item in Epoch::new(ds.clone(), order.clone()).unwrap() {
        let (i, o) = item.unwrap();
        assert_eq!(i, order[seen]);
        match &o.data {
            Sequence::Features(x) => assert_eq!(x[[STEPS - 1, CHANNELS - 1]], i as f32),
            other => panic!("{other:?}"),
        }
        // Slow consumer: the reader fills its queue and must wait.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let rss = resident_bytes().unwrap();
        peak = peak.max(rss.saturating_sub(start));
        seen += 1;
    }
    assert_eq!(seen, FILES);

    // Batching with a mini-batch of 2 through the same bounded reader.
    let batcher = Batcher::for_datastore(BatchOptions::default(), ds.as_ref()).unwrap();
    for mb in batcher
        .epoch(
            ds.clone(),
            &(0..FILES).collect::<Vec<_>>(),
            2,
            LastBatch::Keep,
        )
        .unwrap()
    {
        let mb = mb.unwrap();
        assert_eq!(mb.chunks[0].inputs.data.shape(), &[STEPS, 2, CHANNELS]);
        peak = peak.max(resident_bytes().unwrap().saturating_sub(start));
    }
    let elapsed = began.elapsed();
    eprintln!(
        "memory-bound test: {} MB of .npy in {FILES} files read twice in {:.2} s; \
         resident memory rose by at most {} MB (bound {} MB)",
        data_bytes / MB,
        elapsed.as_secs_f64(),
        peak / MB,
        bound / MB
    );
    assert!(
        peak < bound,
        "resident memory rose by {} MB, bound {} MB",
        peak / MB,
        bound / MB
    );
}
