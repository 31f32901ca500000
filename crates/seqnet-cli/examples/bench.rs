//! Runs the benchmark workloads until `seqnet bench` is wired:
//! `cargo run --release -p seqnet-cli --example bench -- [name ...]`
//! (names may also be given comma-separated). `--no-machine-line` leaves out
//! the 1024³ product (for measuring a workload's peak memory alone).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let machine_line = !args.iter().any(|a| a == "--no-machine-line");
    let names: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .flat_map(|a| {
            a.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let only = (!names.is_empty()).then_some(names.as_slice());
    match seqnet_cli::bench::run_with(only, machine_line) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
