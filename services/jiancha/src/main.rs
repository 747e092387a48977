//! `jiancha`: the electronic supervision monitor for administrative approvals.

/// mimalloc: replay and the monitor allocate and free many small strings and vectors per
/// event; glibc's malloc spent a fifth of a replay (docs/performance.md). Built without
/// transparent huge pages (`no_thp`): on a VM whose host takes freed memory back, faulting
/// 2 MiB pages in made a replay a quarter slower. Built to override `malloc` and `free`
/// for the whole process (`override`), so that librdkafka's C code allocates from it too:
/// its broker threads allocate each fetched message and the monitor's thread frees it,
/// which in glibc's malloc contended for the broker thread's arena (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jiancha::main()
}
