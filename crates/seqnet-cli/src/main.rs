//! The `seqnet` command: see [`seqnet_cli::cli`].

fn main() -> std::process::ExitCode {
    seqnet_cli::cli::main()
}
