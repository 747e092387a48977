//! `jiancha`: the electronic supervision monitor for administrative approvals.

fn main() -> std::process::ExitCode {
    jiancha::main()
}
