//! Runs the benchmark workloads until `seqnet bench` is wired:
//! `cargo run --release -p seqnet-cli --example bench -- [name ...]`
//! (names may also be given comma-separated).

fn main() {
    let names: Vec<String> = std::env::args()
        .skip(1)
        .flat_map(|a| {
            a.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let only = (!names.is_empty()).then_some(names.as_slice());
    if let Err(e) = seqnet_cli::bench::run(only) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
