//! The `seqnet` binary, run as a user would: every template through `new`
//! and `summary`, `train` then `predict` on the Japanese Vowels data, the
//! demo, datastore folders (video classification, regression), PyTorch
//! import, activations, and errors that are one line with a non-zero exit.

use std::path::Path;

mod common;
use common::{fails, new_net, ok, root, run, stderr, stdout, tmp, train_args, vowels, write};

/// Writes `[shape]` f32 values as a `.npy` file (format 1.0, little endian).
fn write_npy(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn every_template_is_written_and_summarised() {
    let dir = tmp("templates");
    for (template, extra, layers) in [
        ("seq2label", vec![], 5),
        (
            "seq2seq-class",
            vec!["--features", "3", "--classes", "4"],
            5,
        ),
        (
            "seq2one",
            vec!["--responses", "2", "--normalization", "zscore"],
            4,
        ),
        ("seq2seq-regress", vec!["--hidden", "20"], 6),
        ("deep-seq2label", vec![], 8),
        ("video", vec!["--image", "16,16,1", "--hidden", "10"], 11),
        ("cnn1d", vec![], 14),
        (
            "cnn1d",
            vec![
                "--features",
                "3",
                "--responses",
                "2",
                "--filters",
                "4,5,6",
                "--filter-sizes",
                "3,3,2",
                "--normalization",
                "zscore",
            ],
            13,
        ),
        ("transformer", vec![], 24),
        (
            "transformer",
            vec![
                "--features",
                "3",
                "--responses",
                "2",
                "--model-dim",
                "8",
                "--heads",
                "2",
                "--blocks",
                "1",
                "--ffn-dim",
                "16",
                "--max-position",
                "40",
                "--normalization",
                "zscore",
            ],
            15,
        ),
    ] {
        let mut args = vec!["new", template];
        args.extend(extra);
        let json = ok(&args);
        let path = write(&dir.join(format!("{template}.json")), &json);
        let summary = ok(&["summary", &path]);
        assert!(
            summary.contains("Total learnables:"),
            "{template}: {summary}"
        );
        let rows = summary
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.parse::<usize>().is_ok())
            })
            .count();
        assert_eq!(rows, layers, "{template}: {summary}");
    }
    let dot = ok(&[
        "graph",
        &dir.join("video.json").display().to_string(),
        "--format",
        "dot",
    ]);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("\"fold\" -> \"unfold\" [label=\"miniBatchSize → miniBatchSize\"]"),
        "{dot}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_then_predict_on_japanese_vowels() {
    let dir = tmp("vowels");
    let net = new_net(&dir.join("net.json"), "seq2label");
    let model = dir.join("out/model.safetensors").display().to_string();
    let plot = dir.join("progress.svg").display().to_string();
    let report = ok(&train_args(
        &net,
        &vowels("JapaneseVowels_TRAIN.ts"),
        &model,
        &[
            "--epochs",
            "3",
            "--mini-batch-size",
            "27",
            "--gradient-threshold",
            "1",
            "--shuffle",
            "never",
            "--sort-by-length",
            "--plot",
            &plot,
            "--quiet",
        ],
    ));
    assert!(
        report.contains("trained 3 epochs (30 iterations)"),
        "{report}"
    );
    assert!(Path::new(&model).is_file() && Path::new(&plot).is_file());

    let csv = dir.join("predictions.csv").display().to_string();
    let o = ok(&[
        "predict",
        "--model",
        &model,
        "--data",
        &vowels("JapaneseVowels_TEST.ts"),
        "--out",
        &csv,
    ]);
    let last = o.lines().last().unwrap();
    let (acc, n) = last
        .strip_prefix("accuracy=")
        .and_then(|r| r.split_once(" n="))
        .unwrap_or_else(|| panic!("last line: {last}"));
    let acc: f64 = acc.parse().unwrap();
    assert!((0.0..=1.0).contains(&acc) && acc > 0.2, "{last}");
    assert_eq!(n, "370");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 371);
    assert!(
        lines[0].starts_with("observation,label,true_label,score_1,"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1].split(',').count(), 3 + 9);

    // The model file knows its graph and classes.
    let summary = ok(&["summary", &model]);
    assert!(summary.contains("Classes (9): 1, 2, 3"), "{summary}");
    let json = ok(&["graph", &model, "--format", "json"]);
    assert!(json.contains("\"classoutput\""), "{json}");

    // Activations of the LSTM (output mode 'last') over every step.
    let png = dir.join("lstm.png").display().to_string();
    let o = ok(&[
        "activations",
        "--model",
        &model,
        "--data",
        &vowels("JapaneseVowels_TEST.ts"),
        "--layer",
        "lstm",
        "--observation",
        "2",
        "--out",
        &png,
    ]);
    assert!(o.contains("steps × 100 values"), "{o}");
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_writes_the_model_and_pictures() {
    let dir = tmp("demo");
    let out = dir.join("demo");
    let o = ok(&[
        "demo",
        "--epochs",
        "5",
        "--out",
        &out.display().to_string(),
        "--quiet",
    ]);
    for f in [
        "model.safetensors",
        "training_progress.png",
        "training_progress.svg",
        "confusion_matrix.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing; output: {o}");
    }
    assert!(o.contains("test accuracy"), "{o}");
    assert!(o.lines().last().unwrap().starts_with("accuracy="), "{o}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn video_classification_from_a_datastore_folder() {
    let dir = tmp("video");
    let data = dir.join("videos");
    std::fs::create_dir_all(&data).unwrap();
    let mut csv = String::from("file,label\n");
    for i in 0..6 {
        let t = 3 + i % 3;
        let class = if i % 2 == 0 { "bright" } else { "dark" };
        let base = if i % 2 == 0 { 0.8 } else { 0.1 };
        let values: Vec<f32> = (0..t * 8 * 8)
            .map(|k| base + 0.01 * ((k * 7 + i) % 10) as f32)
            .collect();
        let name = format!("v{i}.npy");
        write_npy(&data.join(&name), &[t, 8, 8, 1], &values);
        csv.push_str(&format!("{name},{class}\n"));
    }
    write(&data.join("labels.csv"), &csv);
    let net = new_net(
        &dir.join("net.json"),
        "video --image 8,8,1 --hidden 6 --classes 2",
    );
    let model = dir.join("model.safetensors").display().to_string();
    let d = data.display().to_string();
    ok(&train_args(
        &net,
        &d,
        &model,
        &["--epochs", "2", "--mini-batch-size", "3", "--verbose"],
    ));
    let csv_out = dir.join("p.csv").display().to_string();
    let o = ok(&[
        "predict", "--model", &model, "--data", &d, "--out", &csv_out,
    ]);
    assert!(o.lines().last().unwrap().starts_with("accuracy="), "{o}");
    assert!(o.lines().last().unwrap().ends_with(" n=6"), "{o}");
    let text = std::fs::read_to_string(&csv_out).unwrap();
    assert!(
        text.starts_with("observation,label,true_label,score_bright,score_dark\n"),
        "{text}"
    );
    // Folded convolution output, one row per frame.
    let png = dir.join("conv.png").display().to_string();
    ok(&[
        "activations",
        "--model",
        &model,
        "--data",
        &d,
        "--layer",
        "conv",
        "--out",
        &png,
    ]);
    assert!(Path::new(&png).is_file());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn regression_from_a_datastore_folder_reports_rmse() {
    let dir = tmp("regression");
    let data = dir.join("series");
    std::fs::create_dir_all(&data).unwrap();
    let mut csv = String::from("file,level\n");
    for i in 0..8 {
        let t = 4 + i % 4;
        let values: Vec<f32> = (0..t * 2)
            .map(|k| (i as f32) * 0.1 + 0.05 * (k % 3) as f32)
            .collect();
        let name = format!("s{i}.npy");
        write_npy(&data.join(&name), &[t, 2], &values);
        csv.push_str(&format!("{name},{}\n", i as f32 * 0.5));
    }
    write(&data.join("labels.csv"), &csv);
    let net = new_net(
        &dir.join("net.json"),
        "seq2one --features 2 --hidden 5 --normalization zscore",
    );
    let model = dir.join("model.safetensors").display().to_string();
    let d = data.display().to_string();
    let report = ok(&train_args(
        &net,
        &d,
        &model,
        &[
            "--epochs",
            "3",
            "--mini-batch-size",
            "4",
            "--validation",
            &d,
            "--quiet",
        ],
    ));
    assert!(report.contains("rmse"), "{report}");
    let out = dir.join("p.csv").display().to_string();
    let o = ok(&["predict", "--model", &model, "--data", &d, "--out", &out]);
    let last = o.lines().last().unwrap();
    assert!(
        last.starts_with("rmse=") && last.ends_with(" n=8"),
        "{last}"
    );
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .starts_with("observation,response_1\n"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn import_torch_builds_a_model_file() {
    let dir = tmp("import");
    let fixture = root().join("tests/fixtures/torch/lstm_stack2.safetensors");
    let net = r#"{"layers": [
        {"type": "sequenceInput", "name": "in", "inputSize": 3},
        {"type": "lstm", "name": "lstm1", "numHiddenUnits": 6},
        {"type": "lstm", "name": "lstm2", "numHiddenUnits": 6, "outputMode": "last"},
        {"type": "regression", "name": "out"}
    ], "connections": [
        {"source": "in/out", "destination": "lstm1/in"},
        {"source": "lstm1/out", "destination": "lstm2/in"},
        {"source": "lstm2/out", "destination": "out/in"}
    ]}"#;
    let net = write(&dir.join("net.json"), net);
    let map = write(
        &dir.join("map.json"),
        r#"{"lstm1": "param@0", "lstm2": "param@1"}"#,
    );
    let model = dir.join("model.safetensors").display().to_string();
    let sd = fixture.display().to_string();
    let o = ok(&[
        "import-torch",
        "--state-dict",
        &sd,
        "--net",
        &net,
        "--map",
        &map,
        "--out",
        &model,
    ]);
    assert!(o.contains("imported 2 layers"), "{o}");
    let summary = ok(&["summary", &model]);
    assert!(summary.contains("lstm2"), "{summary}");
    // A mapping that leaves out the second layer's tensors fails, naming one.
    let half = write(
        &dir.join("half.json"),
        r#"{"lstm1": "param@0", "lstm2": "param@0"}"#,
    );
    let e = fails(&[
        "import-torch",
        "--state-dict",
        &sd,
        "--net",
        &net,
        "--map",
        &half,
        "--out",
        &model,
    ]);
    assert!(e.contains("layer 'lstm2'"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn errors_are_one_line_and_name_what_is_at_fault() {
    let dir = tmp("errors");
    let train = vowels("JapaneseVowels_TRAIN.ts");
    // A missing file.
    let e = fails(&["summary", "/no/such/net.json"]);
    assert!(e.contains("/no/such/net.json"), "{e}");
    // Malformed JSON: the file and its line.
    let bad = write(
        &dir.join("bad.json"),
        "{\n  \"layers\": [\n    {\"type\": \"lstm\" \"numHiddenUnits\": 3}\n  ]\n}\n",
    );
    let e = fails(&["summary", &bad]);
    assert!(e.contains("bad.json:3:"), "{e}");
    let e = fails(&train_args(&bad, &train, "m.safetensors", &[]));
    assert!(e.contains("bad.json:3:"), "{e}");
    // A graph that fails its checks names the layer.
    let unknown = write(
        &dir.join("unconnected.json"),
        r#"{"layers": [{"type": "sequenceInput", "name": "in", "inputSize": 3}, {"type": "regression", "name": "out"}], "connections": []}"#,
    );
    let e = fails(&["summary", &unknown]);
    assert!(e.contains("'out/in'"), "{e}");
    // Unknown flag values name the flag.
    let e = fails(&train_args(
        &bad,
        &train,
        "m.safetensors",
        &["--solver", "nadam"],
    ));
    assert!(e.contains("--solver"), "{e}");
    let e = fails(&train_args(
        &bad,
        &train,
        "m.safetensors",
        &["--epochs", "zero"],
    ));
    assert!(e.contains("--epochs"), "{e}");
    let e = fails(&["new", "seq2label", "--normalization", "maybe"]);
    assert!(e.contains("--normalization"), "{e}");
    let e = fails(&["new", "video", "--features", "3"]);
    assert!(e.contains("--features"), "{e}");
    let e = fails(&["new", "cnn1d", "--hidden", "5"]);
    assert!(e.contains("--hidden"), "{e}");
    let e = fails(&["new", "transformer", "--model-dim", "10", "--heads", "4"]);
    assert!(e.contains("--heads"), "{e}");
    let e = fails(&["new", "seq2label", "--blocks", "2"]);
    assert!(e.contains("--model-dim"), "{e}");
    let e = fails(&["new", "transformer", "--layers", "2"]);
    assert!(e.contains("--layers"), "{e}");
    let e = fails(&["new", "cnn1d", "--filters", "4,5"]);
    assert!(e.contains("--filters"), "{e}");
    let e = fails(&["new", "seq2label", "--filter-sizes", "3,3,3"]);
    assert!(e.contains("--filter-sizes"), "{e}");
    let e = fails(&["new", "seq2one", "--classes", "3"]);
    assert!(e.contains("--classes"), "{e}");
    let e = fails(&["new", "teleport"]);
    assert!(e.contains("teleport"), "{e}");
    let e = fails(&train_args(
        &bad,
        &train,
        "m.safetensors",
        &["--epocs", "3"],
    ));
    assert!(e.contains("--epocs") && e.contains("--epochs"), "{e}");
    // Data that does not fit the network names the data and the layer.
    let net = new_net(&dir.join("net13.json"), "seq2label --features 13");
    let e = fails(&train_args(&net, &train, "m.safetensors", &[]));
    assert!(
        e.contains("JapaneseVowels_TRAIN.ts") && e.contains("'sequenceinput'"),
        "{e}"
    );
    // Options file: the file and line, or the option.
    let options = write(&dir.join("o.json"), "{\n  \"maxEpochs\": \"many\"\n}");
    let net = new_net(&dir.join("net.json"), "seq2label");
    let e = fails(&train_args(
        &net,
        &train,
        "m.safetensors",
        &["--options", &options],
    ));
    assert!(e.contains("o.json:2:"), "{e}");
    // Not a model file.
    let e = fails(&[
        "predict", "--model", &net, "--data", &train, "--out", "p.csv",
    ]);
    assert!(e.contains("net.json"), "{e}");
    // A picture with an unknown extension names the flag.
    let e = fails(&train_args(
        &net,
        &train,
        "m.safetensors",
        &["--plot", "p.jpg"],
    ));
    assert!(e.contains("--plot"), "{e}");
    // No command at all is a usage error too.
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failing_command_exits_with_1_and_names_the_file() {
    let dir = tmp("exit-code");
    // Not a model file: the file is named, the exit code is 1.
    let fake = write(&dir.join("fake.safetensors"), "this is not a model");
    let o = run(&[
        "predict",
        "--model",
        &fake,
        "--data",
        &vowels("JapaneseVowels_TEST.ts"),
        "--out",
        &dir.join("p.csv").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: ") && e.contains("fake.safetensors") && e.lines().count() == 1,
        "{e}"
    );
    assert!(!dir.join("p.csv").exists());
    // A missing data file.
    let net = new_net(&dir.join("net.json"), "seq2label");
    let missing = dir.join("nowhere.ts").display().to_string();
    let o = run(&train_args(
        &net,
        &missing,
        &dir.join("m.safetensors").display().to_string(),
        &[],
    ));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        format!("error: {missing}: no such file or folder")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn verbose_shows_matlab_s_table_on_standard_error() {
    let dir = tmp("verbose");
    let net = new_net(&dir.join("net.json"), "seq2label");
    let options = write(&dir.join("o.json"), r#"{"verboseFrequency": 4}"#);
    let model = dir.join("m.safetensors").display().to_string();
    let train = |display: &str| {
        run(&train_args(
            &net,
            &vowels("JapaneseVowels_TRAIN.ts"),
            &model,
            &[
                "--options",
                &options,
                "--epochs",
                "1",
                "--mini-batch-size",
                "27",
                display,
            ],
        ))
    };
    let o = train("--verbose");
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stderr(&o);
    // 270 sequences in mini-batches of 27: 10 iterations; rows at 1, 4, 8
    // and the last, 10.
    let iterations: Vec<String> = table
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("e-"))
        .map(|l| l.split('|').nth(2).unwrap().trim().to_string())
        .collect();
    assert_eq!(iterations, ["1", "4", "8", "10"], "{table}");
    assert!(
        table.contains("Mini-batch") && table.contains("Accuracy"),
        "{table}"
    );
    assert!(
        table.contains("Training finished: max epochs completed."),
        "{table}"
    );
    assert!(
        !stdout(&o).contains("| "),
        "the table is not on standard output"
    );
    let o = train("--quiet");
    assert!(o.status.success());
    assert_eq!(stderr(&o), "", "--quiet shows nothing");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn generate_videos_writes_a_datastore_folder_that_trains() {
    let dir = tmp("generate-videos");
    let videos = dir.join("videos");
    let o = run(&[
        "generate-videos",
        "--out",
        videos.to_str().unwrap(),
        "--count",
        "24",
        "--classes",
        "3",
        "--seed",
        "5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("24 videos"), "{}", stdout(&o));
    let csv = std::fs::read_to_string(videos.join("labels.csv")).unwrap();
    assert_eq!(csv.lines().count(), 25);
    assert_eq!(std::fs::read_dir(&videos).unwrap().count(), 25);
    let net = dir.join("video.json");
    let o = run(&["new", "video", "--classes", "3", "--hidden", "8"]);
    std::fs::write(&net, &o.stdout).unwrap();
    let model = dir.join("m.safetensors");
    let o = run(&train_args(
        net.to_str().unwrap(),
        videos.to_str().unwrap(),
        model.to_str().unwrap(),
        &["--epochs", "1", "--mini-batch-size", "8", "--quiet"],
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "generate-videos",
        "--out",
        videos.to_str().unwrap(),
        "--classes",
        "9",
    ]);
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
