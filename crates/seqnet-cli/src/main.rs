//! The `seqnet` command.

fn main() {
    eprintln!("usage: seqnet <command> [options]");
    std::process::exit(2);
}
