//! The `seqnet` command: see [`seqnet_cli::cli`].

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    seqnet_cli::cli::main()
}
