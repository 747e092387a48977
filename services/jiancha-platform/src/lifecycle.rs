//! Process lifecycle shared by every role.

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    Signals::listen().recv().await;
}

/// SIGINT and SIGTERM, listened for from the moment this is made: a signal that arrives
/// before [`Signals::recv`] is first awaited is not lost.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    listening: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Starts listening (inside a Tokio runtime).
    pub fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals { listening: signal(SignalKind::terminate()).ok().zip(signal(SignalKind::interrupt()).ok()) }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Resolves on the next SIGINT or SIGTERM (since [`Signals::listen`]).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.listening {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
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
    // Listening starts here, not when the task first runs: with every worker busy
    // stopping services, a second signal could otherwise come before it and be lost.
    let mut signals = Signals::listen();
    tokio::spawn(async move {
        tokio::select! {
            _ = signals.recv() => {
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
