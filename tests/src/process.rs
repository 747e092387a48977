//! Child processes of the tests: killed when dropped, their output read line by line.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed on drop.
#[derive(Debug)]
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines a child prints on stdout, read on a thread.
pub fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("stdout piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line starting with `prefix`; returns the rest. Lines read on the way are
/// kept in `seen` (a later call finds them there).
pub fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, seen: &mut Vec<String>, limit: Duration) -> String {
    if let Some(l) = seen.iter().find(|l| l.starts_with(prefix)) {
        return l[prefix.len()..].trim().to_owned();
    }
    let end = Instant::now() + limit;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.starts_with(prefix).then(|| line[prefix.len()..].trim().to_owned());
                seen.push(line);
                if let Some(f) = found {
                    return f;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line `{prefix}` within {limit:?}; printed so far:\n{}", seen.join("\n"));
}

/// Starts `jiancha up` (the test binary `bin`) in `dir` with `args`, its log in
/// `dir/up.log`; returns the process and its stdout lines.
pub fn start_up(bin: &str, dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> (Running, mpsc::Receiver<String>) {
    let mut up = Running(
        std::process::Command::new(bin)
            .arg("up")
            .args(args)
            .current_dir(dir)
            .env("JIANCHA_LOG", "info,rdkafka=warn,sqlx=warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.join("up.log")).expect("up.log"))
            .spawn()
            .expect("start jiancha up"),
    );
    let lines = lines_of(&mut up.0);
    (up, lines)
}
