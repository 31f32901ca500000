//! The `.ts` reader and the pipeline on the real data sets in `data/`.

use seqnet_data::*;
use std::path::PathBuf;
use std::sync::Arc;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel)
}

fn read(rel: &str) -> TsDataset {
    read_ts(data(rel), &TsOptions::default()).expect(rel)
}

#[test]
fn japanese_vowels() {
    let train = read("japanese_vowels/JapaneseVowels_TRAIN.ts");
    let test = read("japanese_vowels/JapaneseVowels_TEST.ts");
    assert_eq!(train.problem_name.as_deref(), Some("JapaneseVowels"));
    assert_eq!((train.len(), test.len()), (270, 370));
    assert_eq!((train.dimensions(), test.dimensions()), (12, 12));
    let range = |d: &TsDataset| {
        let l = d.lengths();
        (*l.iter().min().unwrap(), *l.iter().max().unwrap())
    };
    assert_eq!(range(&train), (7, 26));
    assert_eq!(range(&test), (7, 29));
    // The first value of the first two dimensions of the first observation.
    assert_eq!(train.series[0][[0, 0]], 1.860936);
    assert_eq!(train.series[0][[0, 1]], -0.207383);
    assert_eq!(train.lines[0], 16);
    let count = |d: &TsDataset| match &d.labels {
        TsLabels::Classes { names, labels } => {
            let want: Vec<String> = (1..=9).map(|k| k.to_string()).collect();
            assert_eq!(names, &want);
            let mut c = vec![0; 9];
            for &k in labels {
                c[k] += 1;
            }
            c
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(count(&train), vec![30; 9]);
    assert_eq!(count(&test), vec![31, 35, 88, 44, 29, 24, 40, 50, 29]);
    assert_eq!(train.label_names().unwrap()[269], "9");
}

#[test]
fn tecator() {
    let train = read("tecator/Tecator_TRAIN.ts");
    let test = read("tecator/Tecator_TEST.ts");
    assert_eq!((train.len(), test.len()), (172, 43));
    assert_eq!(train.dimensions(), 1);
    assert!(train
        .lengths()
        .iter()
        .chain(&test.lengths())
        .all(|&l| l == 100));
    assert_eq!(train.series[0][[0, 0]], 2.61776);
    match &train.labels {
        TsLabels::Targets(t) => {
            assert_eq!(t.shape(), &[172, 1]);
            assert_eq!(t[[0, 0]], 22.5);
            assert_eq!(t[[1, 0]], 40.1);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&test.labels, TsLabels::Targets(t) if t.shape() == [43, 1]));
}

/// MATLAB's Japanese Vowels example: sort by length, mini-batches of 27,
/// padded to the longest — with zscore statistics from the training set.
#[test]
fn japanese_vowels_pipeline() {
    let path = data("japanese_vowels/JapaneseVowels_TRAIN.ts");
    let ds = Arc::new(InMemoryDatastore::open_ts(&path, &TsOptions::default()).unwrap());
    assert_eq!(ds.classes().unwrap().len(), 9);
    let stats = ChannelStats::from_datastore(ds.clone()).unwrap();
    assert_eq!(stats.mean.len(), 12);
    assert_eq!(
        stats.count as usize,
        ds.sequence_lengths().unwrap().iter().sum::<usize>()
    );
    assert!(stats.std.iter().all(|&s| s > 0.0));
    assert!(stats.min.iter().zip(&stats.max).all(|(a, b)| a < b));

    let lengths = ds.sequence_lengths().unwrap();
    let order = sort_by_length(&lengths);
    let batcher = Batcher::for_datastore(BatchOptions::default(), ds.as_ref()).unwrap();
    let mut seen = 0;
    let mut padded = 0;
    for mb in batcher
        .epoch(ds.clone(), &order, 27, LastBatch::Discard)
        .unwrap()
    {
        let mb = mb.unwrap();
        assert_eq!(mb.chunks.len(), 1);
        let c = &mb.chunks[0];
        let t = c.inputs.time();
        assert_eq!(c.inputs.data.shape(), &[t, 27, 12]);
        assert_eq!(c.targets.as_ref().unwrap().data.shape(), &[27, 9]);
        let l = c.inputs.seq_lengths();
        padded += l.time * 27 - l.real_steps();
        seen += 27;
    }
    assert_eq!(seen, 270);
    // Sorting keeps padding small: at most a few steps per sequence.
    assert!(padded < 270 * 3, "{padded} padded steps");
}

#[test]
fn a_bad_file_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.ts");
    let good = std::fs::read_to_string(data("japanese_vowels/JapaneseVowels_TRAIN.ts")).unwrap();
    // Corrupt one value on line 20 (the 5th observation).
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    lines[19] = lines[19].replacen(',', ",abc,", 1);
    std::fs::write(&p, lines.join("\n")).unwrap();
    match read_ts(&p, &TsOptions::default()) {
        Err(seqnet_data::Error::Parse {
            file,
            line,
            message,
        }) => {
            assert!(file.ends_with("bad.ts"));
            assert_eq!(line, 20);
            assert!(message.contains("'abc' is not a number"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Invalid UTF-8 on line 3.
    std::fs::write(&p, b"@problemName x\n@classLabel true a\n\xff\xfe\n").unwrap();
    match read_ts(&p, &TsOptions::default()) {
        Err(seqnet_data::Error::Parse { line: 3, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_ts(dir.path().join("none.ts"), &TsOptions::default()),
        Err(seqnet_data::Error::Io { .. })
    ));
}
