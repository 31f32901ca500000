//! PyTorch parity on every `*.safetensors` case in `tests/fixtures/torch/`
//! (format and tolerances: that folder's README). Cases are discovered, not
//! listed, and dispatched on `spec.layer`: a new file of a known kind is checked
//! with no code change, and a file of an unknown kind fails the test.

#[path = "parity/attention.rs"]
mod attention;
#[path = "parity/conv_bn_relu.rs"]
mod conv_bn_relu;
#[path = "parity/recurrent.rs"]
mod recurrent;
#[path = "parity/sequence_cnn.rs"]
mod sequence_cnn;
#[path = "parity/video_net.rs"]
mod video_net;

use std::path::{Path, PathBuf};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

fn check(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let fx = conv_bn_relu::Fixture::parse(&bytes)?;
    let layer = fx.spec["layer"]
        .as_str()
        .ok_or("spec has no 'layer'")?
        .to_string();
    match layer.as_str() {
        l if recurrent::RECURRENT.contains(&l) => recurrent::check_recurrent(&bytes, &fx.spec),
        "conv2d_bn_relu" => conv_bn_relu::check_conv_bn_relu(path).map(|r| {
            r.into_iter()
                .map(|(w, e)| format!("{w}: scaled error {e:.2e}"))
                .collect()
        }),
        "video_net" => video_net::check_video_net(&bytes),
        l if sequence_cnn::KINDS.contains(&l) => sequence_cnn::check(&bytes),
        l if attention::KINDS.contains(&l) => attention::check(&bytes),
        other => Err(format!(
            "unknown fixture layer '{other}': this test does not know how to check it"
        )),
    }
}

#[test]
fn every_fixture_matches_pytorch() {
    let dir = fixtures_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures folder {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the 7 shipped fixtures at least, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        match check(path) {
            Ok(report) => {
                assert!(!report.is_empty(), "{name}: nothing compared");
                println!("{name}: ok\n  {}", report.join("\n  "));
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
}
