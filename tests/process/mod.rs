//! The real `statushub` binary as a child process: what a newcomer runs.
//! Start it, read what it prints up to `statushub listening on …`, stop it.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

/// How long a start may take before the test fails saying so.
pub const START: Duration = Duration::from_secs(20);

/// A running `statushub serve`.
pub struct Hub {
    child: Child,
    /// Everything written on stderr so far (read by a thread as it comes).
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    /// Everything printed on stdout up to and including the listening line.
    pub stdout: String,
    pub url: String,
}

pub fn statushub() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_statushub"));
    for (name, _) in std::env::vars() {
        if name.starts_with("STATUSHUB_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

impl Hub {
    /// Starts `statushub serve ARGS --data-dir DATA` and waits until it listens.
    pub fn serve(data_dir: &Path, args: &[&str]) -> Hub {
        let mut child = statushub()
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the statushub binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        let stderr_reader = Some(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push_str(&text);
            }
        }));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut printed = String::new();
        loop {
            match rx.recv_timeout(START) {
                Ok(line) => {
                    printed += &line;
                    printed.push('\n');
                    if let Some(url) = line.strip_prefix("statushub listening on ") {
                        let url = url.trim().to_owned();
                        return Hub {
                            child,
                            stderr,
                            stderr_reader,
                            stdout: printed,
                            url,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if let Some(reader) = stderr_reader {
                        let _ = reader.join();
                    }
                    let stderr = stderr.lock().unwrap().clone();
                    panic!(
                        "statushub serve {args:?} did not print its listening line\n\
                         stdout:\n{printed}\nstderr:\n{stderr}"
                    );
                }
            }
        }
    }

    /// The value of `export … NAME='VALUE'` in the `--dev` banner.
    pub fn exported(&self, name: &str) -> String {
        let marker = format!("{name}='");
        let start = self
            .stdout
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name}='…' in the banner:\n{}", self.stdout))
            + marker.len();
        let len = self.stdout[start..].find('\'').expect("closing quote");
        self.stdout[start..start + len].to_owned()
    }

    /// Waits until stderr holds `needle`; returns all of stderr so far.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + START;
        loop {
            let text = self.stderr.lock().unwrap().clone();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "statushub never logged {needle:?}; stderr:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM, waits for the exit and returns what it wrote on stderr.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
        self.child.wait().expect("wait for statushub");
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().expect("stderr reader");
        }
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
