//! Start-up as an operator sees it, on the real binary: the listening line
//! comes only once the hub is ready, and a data directory the store cannot
//! use fails with the cause in plain words.

mod common;

use common::WAIT;
use std::{
    io::{BufRead, BufReader},
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_statushub");

fn serve(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--jwt-secret", "s3cret"])
        .args(["--api-keys", "key-1", "--data-dir"])
        .arg(data_dir)
        .env_remove("STATUSHUB_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a start-up that must fail; returns (stdout, stderr).
fn failed_start(mut cmd: Command) -> (String, String) {
    let child = cmd.spawn().expect("spawn statushub");
    let started = Instant::now();
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if started.elapsed() > WAIT {
            // Never left running: it would be serving, which it must not.
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("statushub did not exit on a bad data dir");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = waiter.join().unwrap().expect("output");
    assert!(!status.success(), "start-up failed with a non-zero status");
    (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn assert_clear_failure(stdout: &str, stderr: &str, cause: &str) {
    assert!(
        !stdout.contains("listening"),
        "never announced as listening: {stdout}"
    );
    assert!(
        stderr.contains("cannot open the store in") && stderr.contains(cause),
        "names the cause ({cause}): {stderr}"
    );
    assert!(
        !stderr.contains("store unavailable"),
        "no repeated wrapper: {stderr}"
    );
    assert!(stderr.contains("--data-dir"), "names the setting: {stderr}");
}

#[test]
fn a_data_dir_that_is_a_file_fails_clearly_and_is_never_announced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, b"not a directory").unwrap();
    let (stdout, stderr) = failed_start(serve(&file));
    assert_clear_failure(&stdout, &stderr, "not a directory");
}

#[test]
fn an_unwritable_data_dir_says_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut cmd = serve(&data);
    // A file we created is owned by our effective uid.
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        // root writes anywhere: run the hub as `nobody` on a root-owned dir.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let (stdout, stderr) = failed_start(cmd);
    assert_clear_failure(&stdout, &stderr, "permission denied");
}

#[test]
fn a_corrupt_database_fails_clearly_and_is_never_announced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("statushub.db"),
        vec![0x5a; 8192], // not SQLite's header
    )
    .unwrap();
    let (stdout, stderr) = failed_start(serve(dir.path()));
    assert_clear_failure(&stdout, &stderr, "not a database");
}

#[test]
fn a_good_data_dir_is_announced_once_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve(&dir.path().join("fresh")).spawn().expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let line = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    });
    let started = Instant::now();
    while !line.is_finished() && started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let finished = line.is_finished();
    let _ = child.kill();
    let _ = child.wait();
    assert!(finished, "announced within the wait");
    let line = line.join().unwrap();
    assert!(
        line.starts_with("statushub listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        dir.path().join("fresh").join("statushub.db").exists(),
        "the store was open when the line was printed"
    );
}
