//! The command line as a newcomer meets it: `serve --dev` across a restart,
//! `token` after `--dev`, `--listen` forms, messages and `--help` texts.

mod process;

use process::{Hub, statushub};
use serde_json::{Value, json};

async fn get(url: &str, credential: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(url)
        .bearer_auth(credential)
        .send()
        .await
        .expect("GET");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post_phone_test(hub: &Hub, key: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/accounts/demo/phone-tests", hub.url))
        .bearer_auth(key)
        .json(&json!({ "phoneNumberId": "p1", "isActive": true }))
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn output(args: &[&str]) -> (bool, String, String) {
    let out = statushub().args(args).output().expect("run statushub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_dev_hub_restarted_on_the_same_data_dir_keeps_its_tokens_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = Hub::serve(dir.path(), &["--dev", "--listen", "127.0.0.1:0"]);
    let token = first.exported("TOKEN");
    let key = first.exported("API_KEY");
    assert!(
        first.stdout.contains("made now and kept in"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("dev-secrets.json"),
        "{}",
        first.stdout
    );
    let status = format!("{}/v1/accounts/demo/status", first.url);
    assert_eq!(get(&status, &token).await.0, 200);
    assert_eq!(post_phone_test(&first, &key).await.0, 201);
    first.stop();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir.path().join("dev-secrets.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    let second = Hub::serve(dir.path(), &["--dev", "--listen", "127.0.0.1:0"]);
    assert!(
        second.stdout.contains("kept from an earlier --dev run"),
        "{}",
        second.stdout
    );
    assert_eq!(second.exported("API_KEY"), key);
    let status = format!("{}/v1/accounts/demo/status", second.url);
    let (code, snapshot) = get(&status, &token).await;
    assert_eq!(
        code, 200,
        "the first run's token still opens the account: {snapshot}"
    );
    assert_eq!(snapshot["phones"]["p1"]["status"], "ACTIVE");
    assert_eq!(post_phone_test(&second, &key).await.0, 201);

    // `token --data-dir` signs with the kept secret; the hub takes the result.
    let (ok, minted, stderr) = output(&[
        "token",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--account",
        "demo",
        "--user",
        "me",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(get(&status, minted.trim()).await.0, 200);

    // A wrong API key is refused as an API key, on publish and on read routes.
    for (code, body) in [
        post_phone_test(&second, "dev-key-00000000000000000000000000000000").await,
        get(&status, "dev-key-00000000000000000000000000000000").await,
    ] {
        assert_eq!(code, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(message(&body), "invalid API key", "{body}");
    }
    // A token from another secret: plain words, no Rust type names.
    let (code, body) = get(&status, "abc.def.ghi").await;
    assert_eq!(code, 401);
    assert!(message(&body).starts_with("malformed token: "), "{body}");
    assert!(!message(&body).contains("Invalid"), "{body}");
    second.stop();
}

#[test]
fn missing_secrets_name_the_setting_and_only_offer_what_the_command_takes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (ok, _, stderr) = output(&["token", "--account", "a", "--user", "u", "--data-dir", data]);
    assert!(!ok);
    assert!(stderr.contains("JWT secret is required"), "{stderr}");
    assert!(stderr.contains("--data-dir"), "{stderr}");
    assert!(
        !stderr.contains("run with --dev"),
        "token takes no --dev: {stderr}"
    );

    let (ok, _, stderr) = output(&["serve", "--jwt-secret", "s", "--data-dir", data]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "an API key is required (set STATUSHUB_API_KEYS or pass --api-keys, or run with --dev"
        ),
        "{stderr}"
    );
}

#[test]
fn a_bad_listen_address_is_refused_with_a_valid_example() {
    let (ok, _, stderr) = output(&[
        "serve",
        "--listen",
        "8080",
        "--jwt-secret",
        "s",
        "--api-keys",
        "k",
    ]);
    assert!(!ok);
    assert!(stderr.contains("e.g. 127.0.0.1:8080"), "{stderr}");
    assert!(stderr.contains(":0"), "{stderr}");
}

#[test]
fn a_monitor_history_window_out_of_range_names_its_setting() {
    for bad in ["10m", "400d"] {
        let (ok, _, stderr) = output(&[
            "serve",
            "--jwt-secret",
            "s",
            "--api-keys",
            "k",
            "--monitor-history",
            bad,
        ]);
        assert!(!ok, "{bad} was accepted");
        assert!(
            stderr.contains("STATUSHUB_MONITOR_HISTORY (--monitor-history)")
                && stderr.contains("between 1h and 366d"),
            "{bad}: {stderr}"
        );
    }
}

#[test]
fn listen_accepts_port_only_and_localhost_as_the_readme_says() {
    for listen in [":0", "localhost:0"] {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::serve(
            dir.path(),
            &["--listen", listen, "--jwt-secret", "s", "--api-keys", "k"],
        );
        assert!(
            hub.url.starts_with("http://127.0.0.1:"),
            "{listen}: {}",
            hub.url
        );
        assert!(
            !hub.url.ends_with(":0"),
            "{listen}: a free port was chosen: {}",
            hub.url
        );
        hub.stop();
    }
}

#[test]
fn help_describes_every_token_flag_and_cluster_mode_honestly() {
    let (ok, help, _) = output(&["token", "--help"]);
    assert!(ok);
    for flag in [
        "--account",
        "--user",
        "--role",
        "--ttl",
        "--jwt-secret",
        "--data-dir",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} in:\n{help}"));
        let described = line
            .trim_start()
            .split_once("  ")
            .is_some_and(|(_, d)| !d.trim().is_empty());
        assert!(described, "{flag} has no description:\n{help}");
    }
    let (ok, help, _) = output(&["serve", "--help"]);
    assert!(ok);
    assert!(!help.contains("run in cluster mode"), "{help}");
    assert!(help.contains("cluster mode on Redis"), "{help}");
}
