//! The `jiancha` command line, built inside this package so that the Kafka tests can
//! run the monitor as a separate process (and kill it).

fn main() -> std::process::ExitCode {
    jiancha::main()
}
