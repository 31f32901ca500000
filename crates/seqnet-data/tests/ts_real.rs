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

/// Class counts of a classification file, in the header's class order.
fn class_counts(d: &TsDataset) -> (Vec<String>, Vec<usize>) {
    match &d.labels {
        TsLabels::Classes { names, labels } => {
            let mut c = vec![0; names.len()];
            for &k in labels {
                c[k] += 1;
            }
            (names.clone(), c)
        }
        other => panic!("{other:?}"),
    }
}

/// BasicMotions as the UEA archive describes it (Bagnall et al. 2018, and
/// the file's own header): 6 dimensions (3-D accelerometer and gyroscope),
/// equal length 100 (ten seconds at 10 Hz), 40 train and 40 test cases, four
/// activities recorded five times by each of four students, so 20 per class,
/// split evenly.
#[test]
fn basic_motions() {
    let train = read("basic_motions/BasicMotions_TRAIN.ts");
    let test = read("basic_motions/BasicMotions_TEST.ts");
    assert_eq!(train.problem_name.as_deref(), Some("BasicMotions"));
    assert_eq!((train.len(), test.len()), (40, 40));
    assert_eq!((train.dimensions(), test.dimensions()), (6, 6));
    assert!(train
        .lengths()
        .iter()
        .chain(&test.lengths())
        .all(|&l| l == 100));
    let names = ["Standing", "Running", "Walking", "Badminton"].map(String::from);
    assert_eq!(class_counts(&train), (names.to_vec(), vec![10; 4]));
    assert_eq!(class_counts(&test), (names.to_vec(), vec![10; 4]));
    // The first value of the file's first case (line 14, after the header).
    assert_eq!(train.lines[0], 14);
    assert_eq!(train.series[0][[0, 0]], 0.079106);
}

/// GunPoint as the UCR archive describes it (Dau et al. 2019): univariate,
/// equal length 150, 50 train and 150 test cases, two classes named "1"
/// (Gun-Draw) and "2" (Point).
#[test]
fn gun_point() {
    let train = read("gun_point/GunPoint_TRAIN.ts");
    let test = read("gun_point/GunPoint_TEST.ts");
    assert_eq!(train.problem_name.as_deref(), Some("GunPoint"));
    assert_eq!((train.len(), test.len()), (50, 150));
    assert_eq!((train.dimensions(), test.dimensions()), (1, 1));
    assert!(train
        .lengths()
        .iter()
        .chain(&test.lengths())
        .all(|&l| l == 150));
    for d in [&train, &test] {
        let (names, counts) = class_counts(d);
        assert_eq!(names, ["1", "2"].map(String::from));
        assert_eq!(counts.iter().sum::<usize>(), d.len());
        assert!(counts.iter().all(|&c| c > 0));
    }
    assert_eq!(train.series[0][[0, 0]], -0.6478854);
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
