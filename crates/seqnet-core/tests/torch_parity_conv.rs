//! PyTorch parity of convolution → batch normalization → ReLU on the fixture
//! `tests/fixtures/torch/conv_bn_relu.safetensors` at the repository root.

#[path = "parity/conv_bn_relu.rs"]
mod conv_bn_relu;

use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch")
}

#[test]
fn conv_bn_relu_matches_pytorch() {
    let path = fixtures().join("conv_bn_relu.safetensors");
    match conv_bn_relu::check_conv_bn_relu(&path) {
        Ok(report) => {
            assert_eq!(report.len(), 9, "every stored value is compared");
            for (what, err) in report {
                eprintln!("{what}: scaled error {err:.2e}");
            }
        }
        Err(e) => panic!("{e}"),
    }
}
