//! Process lifecycle shared by every role.

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Exit status after a second signal: the operator insisted (128 + SIGINT, as shells report).
pub const FORCED_EXIT: i32 = 130;

/// Exit status when a clean stop took longer than its deadline.
pub const SHUTDOWN_TIMED_OUT: i32 = 4;

/// Called once the first SIGINT/SIGTERM was received and a clean stop has begun: a second
/// signal ends the process at once, and so does `deadline` passing (a broker that is down
/// can hold a final commit for ever). Either is said on stderr.
pub fn force_exit_after(deadline: std::time::Duration) {
    tokio::spawn(async move {
        tokio::select! {
            _ = wait_for_signal() => {
                eprintln!("jiancha: second signal: exiting without finishing the clean stop");
                std::process::exit(FORCED_EXIT);
            }
            _ = tokio::time::sleep(deadline) => {
                eprintln!("jiancha: the clean stop took longer than shutdown_timeout ({} s): exiting", deadline.as_secs_f64());
                std::process::exit(SHUTDOWN_TIMED_OUT);
            }
        }
    });
}
