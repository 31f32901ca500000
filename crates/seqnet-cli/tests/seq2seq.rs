//! The `seqnet` binary on sequence-to-sequence data: datastore folders with
//! per-step target files (classification and regression, `.npy` and `.csv`
//! sequences), forecasting closed and open loop, bad target files, and the
//! recurrent-layer options of the templates.

use std::path::{Path, PathBuf};

mod common;
use common::{fails, new_net, ok, p, tmp, train_args};

/// Writes a `.npy` file (format 1.0) of `shape` with element type `descr`
/// (`<f4`, `<i8`, …) from its little-endian bytes.
fn npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i64s(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A small deterministic generator (xorshift), so the tests need no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A per-step classification folder: 1-feature sequences of 5 to 14 steps
/// of values in [0, 1); a step's class is "high" when its value is above 0.5.
/// Returns the folder and its total number of steps.
fn class_folder(dir: &Path, count: usize, seed: u64) -> (PathBuf, usize) {
    let mut rng = Rng(seed);
    let mut csv = String::from("file,target\n");
    let mut total = 0;
    for i in 0..count {
        let t = 5 + (rng.next() * 10.0) as usize;
        let x: Vec<f32> = (0..t).map(|_| rng.next()).collect();
        let y: Vec<i64> = x.iter().map(|&v| i64::from(v > 0.5)).collect();
        npy(&dir.join(format!("seq/{i}.npy")), "<f4", &[t, 1], &f32s(&x));
        npy(&dir.join(format!("tgt/{i}.npy")), "<i8", &[t], &i64s(&y));
        csv.push_str(&format!("seq/{i}.npy,tgt/{i}.npy\n"));
        total += t;
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    std::fs::write(dir.join("classes.txt"), "low\nhigh\n").unwrap();
    (dir.to_path_buf(), total)
}

/// The value of `key=` in the last line of `text`.
fn last_value(text: &str, key: &str) -> f64 {
    println!("{text}");
    let last = text.lines().last().unwrap_or_default();
    let field = last
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in '{last}'"));
    field.parse().unwrap()
}

fn last_n(text: &str) -> usize {
    last_value(text, "n") as usize
}

#[test]
fn sequence_to_sequence_classification_from_target_files() {
    let dir = tmp("class");
    let (train, _) = class_folder(&dir.join("train"), 48, 1);
    let (test, steps) = class_folder(&dir.join("test"), 16, 2);
    let net = dir.join("net.json");
    new_net(&net, "seq2seq-class --features 1 --classes 2 --hidden 16");
    let model = dir.join("model.safetensors");
    let trained = ok(&train_args(
        &p(&net),
        &p(&train),
        &p(&model),
        &[
            "--epochs",
            "40",
            "--mini-batch-size",
            "8",
            "--learn-rate",
            "0.02",
            "--quiet",
        ],
    ));
    assert!(trained.contains("accuracy"), "{trained}");
    let csv = dir.join("pred.csv");
    let out = ok(&[
        "predict",
        "--model",
        &p(&model),
        "--data",
        &p(&test),
        "--out",
        &p(&csv),
    ]);
    // One row per real step, and the per-step accuracy over all of them.
    assert_eq!(last_n(&out), steps, "{out}");
    let accuracy = last_value(&out, "accuracy");
    assert!(accuracy > 0.9, "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "observation,step,label,true_label,score_low,score_high"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), steps);
    let correct = rows.iter().filter(|r| r[2] == r[3]).count();
    assert!((correct as f64 / steps as f64 - accuracy).abs() < 1e-4);
    // Steps count from 1 within each observation.
    assert_eq!((rows[0][0], rows[0][1]), ("1", "1"));
    assert!(rows.windows(2).all(|w| w[0][0] != w[1][0]
        || w[1][1].parse::<usize>().unwrap() == w[0][1].parse::<usize>().unwrap() + 1));
}

#[test]
fn sequence_to_sequence_regression_from_csv_sequences() {
    let dir = tmp("regress");
    let mut rng = Rng(7);
    let mut total = 0;
    for set in ["train", "test"] {
        let d = dir.join(set);
        let mut csv = String::from("file,target\n");
        let count = if set == "train" { 48 } else { 12 };
        for i in 0..count {
            let t = 6 + (rng.next() * 10.0) as usize;
            let x: Vec<f32> = (0..t).map(|_| rng.next()).collect();
            // The response: the running mean of the inputs, which needs memory.
            let y: Vec<f32> = (0..t)
                .map(|k| x[..=k].iter().sum::<f32>() / (k + 1) as f32)
                .collect();
            let mut seq = String::from("value\n");
            x.iter().for_each(|v| seq.push_str(&format!("{v}\n")));
            std::fs::create_dir_all(d.join("seq")).unwrap();
            std::fs::write(d.join(format!("seq/{i}.csv")), seq).unwrap();
            npy(&d.join(format!("tgt/{i}.npy")), "<f4", &[t], &f32s(&y));
            csv.push_str(&format!("seq/{i}.csv,tgt/{i}.npy\n"));
            if set == "test" {
                total += t;
            }
        }
        std::fs::write(d.join("labels.csv"), csv).unwrap();
    }
    let net = dir.join("net.json");
    new_net(
        &net,
        "seq2seq-regress --features 1 --responses 1 --hidden 16 --layer gru",
    );
    let model = dir.join("model.safetensors");
    ok(&train_args(
        &p(&net),
        &p(&dir.join("train")),
        &p(&model),
        &[
            "--epochs",
            "60",
            "--mini-batch-size",
            "8",
            "--learn-rate",
            "0.01",
            "--quiet",
        ],
    ));
    let csv = dir.join("pred.csv");
    let out = ok(&[
        "predict",
        "--model",
        &p(&model),
        "--data",
        &p(&dir.join("test")),
        "--out",
        &p(&csv),
    ]);
    assert_eq!(last_n(&out), total, "{out}");
    // Guessing 0.5 everywhere gives an RMSE of about 0.15 on these targets.
    let rmse = last_value(&out, "rmse");
    assert!(rmse < 0.08, "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("observation,step,response_1\n"), "{text}");
    assert_eq!(text.lines().count(), total + 1);
}

/// Reads a forecast CSV: `(observation, step, forecast, truth)` for one channel.
fn forecast_rows(path: &Path) -> Vec<(usize, usize, f64, Option<f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "observation,step,forecast_1,true_1");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().ok(),
            )
        })
        .collect()
}

#[test]
fn forecasting_closed_and_open_loop() {
    let dir = tmp("forecast");
    let (train, test) = (dir.join("train"), dir.join("test"));
    ok(&[
        "generate-series",
        "--out",
        &p(&train),
        "--count",
        "40",
        "--steps",
        "80",
        "--seed",
        "1",
    ]);
    ok(&[
        "generate-series",
        "--out",
        &p(&test),
        "--count",
        "10",
        "--steps",
        "80",
        "--seed",
        "2",
    ]);
    let net = dir.join("net.json");
    new_net(
        &net,
        "seq2seq-regress --features 1 --responses 1 --hidden 32",
    );
    let model = dir.join("model.safetensors");
    ok(&train_args(
        &p(&net),
        &p(&train),
        &p(&model),
        &[
            "--epochs",
            "60",
            "--mini-batch-size",
            "8",
            "--learn-rate",
            "0.01",
            "--gradient-threshold",
            "1",
            "--quiet",
        ],
    ));
    // Prime on 60 of the 79 steps, forecast 19: every forecast step has its true value.
    let mut rmse = Vec::new();
    for mode in ["closed-loop", "open-loop"] {
        let csv = dir.join(format!("{mode}.csv"));
        let png = dir.join(format!("{mode}.png"));
        let out = ok(&[
            "forecast",
            "--model",
            &p(&model),
            "--data",
            &p(&test),
            "--prime",
            "60",
            "--steps",
            "19",
            "--mode",
            mode,
            "--out",
            &p(&csv),
            "--plot",
            &p(&png),
        ]);
        assert_eq!(last_n(&out), 10 * 19, "{out}");
        let rows = forecast_rows(&csv);
        assert_eq!(rows.len(), 190);
        assert_eq!(
            (rows[0].0, rows[0].1, rows[18].1, rows[19].0),
            (1, 61, 79, 2)
        );
        assert!(rows.iter().all(|r| r.3.is_some()));
        let from_csv = (rows
            .iter()
            .map(|r| (r.2 - r.3.unwrap()).powi(2))
            .sum::<f64>()
            / 190.0)
            .sqrt();
        let printed = last_value(&out, "rmse");
        assert!((from_csv - printed).abs() < 1e-4, "{from_csv} vs {out}");
        assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
        rmse.push(printed);
    }
    // Repeating each series' last observed value, for comparison.
    let rows = forecast_rows(&dir.join("closed-loop.csv"));
    let mut naive = 0.0;
    for obs in 0..10 {
        let x = std::fs::read(test.join(format!("sequences/seq_{:05}.npy", obs + 1))).unwrap();
        let values: Vec<f32> = x[x.len() - 79 * 4..]
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let last = f64::from(values[59]);
        naive += rows[obs * 19..(obs + 1) * 19]
            .iter()
            .map(|r| (last - r.3.unwrap()).powi(2))
            .sum::<f64>();
    }
    let naive = (naive / 190.0).sqrt();
    assert!(
        rmse[0] < 0.5 * naive,
        "closed loop {} vs repeating the last value {naive}",
        rmse[0]
    );
    // Fed the true values, open loop stays closer.
    assert!(rmse[1] < rmse[0], "{rmse:?}");

    // Primed on every step: only the first forecast step's value is known (the last target).
    let csv = dir.join("all.csv");
    let out = ok(&[
        "forecast",
        "--model",
        &p(&model),
        "--data",
        &p(&test),
        "--steps",
        "5",
        "--out",
        &p(&csv),
    ]);
    assert_eq!(last_n(&out), 10, "{out}");
    let rows = forecast_rows(&csv);
    assert_eq!((rows[0].1, rows[4].1), (80, 84));
    assert!(rows.iter().all(|r| r.3.is_some() == (r.1 == 80)));

    // Errors: priming past the end, a classification model.
    let e = fails(&[
        "forecast",
        "--model",
        &p(&model),
        "--data",
        &p(&test),
        "--prime",
        "200",
        "--steps",
        "3",
        "--out",
        &p(&csv),
    ]);
    assert!(e.contains("--prime") && e.contains("only 79"), "{e}");
    let (cls, _) = class_folder(&dir.join("cls"), 8, 3);
    let cnet = dir.join("cnet.json");
    new_net(&cnet, "seq2seq-class --features 1 --classes 2 --hidden 4");
    let cmodel = dir.join("cmodel.safetensors");
    ok(&train_args(
        &p(&cnet),
        &p(&cls),
        &p(&cmodel),
        &["--epochs", "1", "--quiet"],
    ));
    let e = fails(&[
        "forecast",
        "--model",
        &p(&cmodel),
        "--data",
        &p(&test),
        "--steps",
        "3",
        "--out",
        &p(&csv),
    ]);
    assert!(e.contains("--model") && e.contains("classifies"), "{e}");
}

#[test]
fn bad_target_files_name_the_files() {
    let dir = tmp("bad");
    let net = dir.join("net.json");
    new_net(&net, "seq2seq-class --features 1 --classes 2 --hidden 4");
    let train = |data: &Path| {
        fails(&train_args(
            &p(&net),
            &p(data),
            &p(&dir.join("m.safetensors")),
            &["--epochs", "1", "--quiet"],
        ))
    };
    // A folder of two good observations; `mutate` spoils it.
    let folder = |name: &str, mutate: &dyn Fn(&Path)| {
        let d = dir.join(name);
        class_folder(&d, 2, 5);
        mutate(&d);
        d
    };
    let lengths = |d: &Path| -> Vec<usize> {
        (0..2)
            .map(|i| {
                let b = std::fs::read(d.join(format!("seq/{i}.npy"))).unwrap();
                let h = u16::from_le_bytes([b[8], b[9]]) as usize;
                (b.len() - 10 - h) / 4
            })
            .collect()
    };

    let d = folder("short", &|d| {
        let t = lengths(d)[1];
        npy(
            &d.join("tgt/1.npy"),
            "<i8",
            &[t - 1],
            &i64s(&vec![0; t - 1]),
        );
    });
    let e = train(&d);
    assert!(
        e.contains("labels.csv:3:")
            && e.contains("tgt/1.npy")
            && e.contains("seq/1.npy")
            && e.contains(&format!("{} time steps", lengths(&d)[1] - 1)),
        "{e}"
    );

    let d = folder("dtype", &|d| {
        let t = lengths(d)[0];
        npy(&d.join("tgt/0.npy"), "<i2", &[t], &vec![0u8; 2 * t]);
    });
    let e = train(&d);
    assert!(
        e.contains("labels.csv:2:") && e.contains("tgt/0.npy") && e.contains("not supported"),
        "{e}"
    );

    let d = folder("range", &|d| {
        let t = lengths(d)[1];
        let mut y = vec![0i64; t];
        y[t - 1] = 2;
        npy(&d.join("tgt/1.npy"), "<i8", &[t], &i64s(&y));
    });
    let e = train(&d);
    assert!(
        e.contains("tgt/1.npy")
            && e.contains("class index 2")
            && e.contains("classes.txt")
            && e.contains(&format!("time step {}", lengths(&d)[1])),
        "{e}"
    );

    let d = folder("missing", &|d| {
        std::fs::remove_file(d.join("tgt/0.npy")).unwrap()
    });
    let e = train(&d);
    assert!(
        e.contains("labels.csv:2: tgt/0.npy") && e.contains("No such file"),
        "{e}"
    );

    let d = folder("ragged", &|d| {
        std::fs::write(d.join("seq/0.csv"), "a,b\n1,2\n3\n").unwrap();
        let csv = std::fs::read_to_string(d.join("labels.csv")).unwrap();
        std::fs::write(d.join("labels.csv"), csv.replace("seq/0.npy", "seq/0.csv")).unwrap();
    });
    let e = train(&d);
    assert!(
        e.contains("seq/0.csv:3:") && e.contains("1 field, the header has 2"),
        "{e}"
    );
}

#[test]
fn templates_take_every_recurrent_layer() {
    let json = ok(&[
        "new",
        "seq2label",
        "--layer",
        "gru",
        "--layers",
        "3",
        "--dropout",
        "0.25",
    ]);
    let types: Vec<&str> = json
        .match_indices("\"type\": \"")
        .map(|(i, m)| {
            let rest = &json[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(
        types,
        [
            "sequenceInput",
            "gru",
            "dropout",
            "gru",
            "dropout",
            "gru",
            "fullyConnected",
            "softmax",
            "classification"
        ]
    );
    let json = ok(&["new", "video", "--layer", "bilstm", "--hidden", "8"]);
    assert!(json.contains("\"type\": \"bilstm\""), "{json}");
    // A BiGRU stack: 2H outputs feed the next layer and the classifier.
    let json = ok(&[
        "new",
        "seq2seq-class",
        "--layer",
        "bigru",
        "--layers",
        "2",
        "--hidden",
        "6",
    ]);
    let graph = seqnet_core::LayerGraph::from_json(&json, "new").unwrap();
    graph.check().unwrap();
    let bigrus: Vec<&seqnet_core::layers::BiGru> = graph
        .layers
        .iter()
        .filter_map(|l| l.downcast_ref::<seqnet_core::layers::BiGru>())
        .collect();
    assert_eq!(bigrus.len(), 2, "{json}");
    assert!(bigrus.iter().all(|g| g.num_hidden_units == 6), "{json}");
    let e = fails(&["new", "seq2one", "--dropout", "0.2"]);
    assert!(
        e.contains("--dropout") && e.contains("2 or more layers"),
        "{e}"
    );
    let e = fails(&["new", "seq2one", "--dropout", "1.5"]);
    assert!(e.contains("--dropout"), "{e}");
}
