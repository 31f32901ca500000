//! `seqnet docs-figures` draws the pictures of docs/LSTM.md from the
//! repository's Japanese Vowels data, the same ones the repository holds.

use std::process::Command;

mod common;
use common::{png_size, root, BIN};

#[test]
fn docs_figures_are_drawn_as_the_docs_show_them() {
    let dir = std::env::temp_dir().join(format!("seqnet-docs-figures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(BIN)
        .args(["docs-figures", "--out", dir.to_str().unwrap()])
        .arg("--data")
        .arg(root().join("data/japanese_vowels/JapaneseVowels_TRAIN.ts"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = String::from_utf8_lossy(&o.stdout);
    let docs = std::fs::read_to_string(root().join("docs/LSTM.md")).unwrap();
    for name in [
        "lstm_unit.png",
        "lstm_flow.png",
        "sequence_padding.png",
        "sequence_truncation.png",
        "sequence_splitting.png",
        "sequence_padding_direction.png",
    ] {
        assert!(listed.contains(name), "{name} not listed: {listed}");
        assert!(
            docs.contains(&format!("figures/{name}")),
            "docs/LSTM.md lacks {name}"
        );
        // The repository's copy is the picture the command draws now.
        assert_eq!(
            png_size(&dir.join(name)),
            png_size(&root().join("docs/figures").join(name)),
            "{name}: regenerate with seqnet docs-figures --out docs/figures"
        );
    }
    // Two panels side by side of 560 pixels, margins of 30.
    assert_eq!(png_size(&dir.join("sequence_padding.png")).0, 1210);
    std::fs::remove_dir_all(&dir).unwrap();
}
