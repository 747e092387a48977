//! `jiancha`: the electronic supervision monitor for administrative approvals.

/// mimalloc: replay and the monitor allocate and free many small strings and vectors per
/// event; glibc's malloc spent a fifth of a replay (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jiancha::main()
}
