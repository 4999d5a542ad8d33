//! `serve --dev`: a JWT secret and an API key that survive a restart.
//!
//! Made up on every start, they broke every open tab (`invalid token
//! signature`) and every script holding the old key. They are now made once,
//! kept in `<data-dir>/dev-secrets.json` (mode 0600, next to the events they
//! protect) and reused, so a restarted dev hub takes its old tokens and key.
//! `statushub token --data-dir …` reads the same file to mint more tokens.

use serde::{Deserialize, Serialize};
use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// The file's name inside the data dir.
pub const FILE_NAME: &str = "dev-secrets.json";

/// What `--dev` keeps for the next start.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevSecrets {
    pub jwt_secret: String,
    pub api_key: String,
}

/// The dev secrets file could not be read or written; the message names it
/// and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DevSecretsError {
    #[error("cannot keep the --dev secrets in {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error(
        "{} is not a dev secrets file ({reason}); delete it and `serve --dev` makes a new one",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// Where the dev secrets of `data_dir` live.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The secrets kept in `data_dir`, if `serve --dev` made some there.
pub fn load(data_dir: &Path) -> Result<Option<DevSecrets>, DevSecretsError> {
    let path = path(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path, &e)),
    };
    let secrets: DevSecrets =
        serde_json::from_str(&text).map_err(|e| DevSecretsError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if secrets.jwt_secret.is_empty() || secrets.api_key.is_empty() {
        return Err(DevSecretsError::Corrupt {
            path,
            reason: "a secret is empty".into(),
        });
    }
    Ok(Some(secrets))
}

/// The secrets kept in `data_dir`, made and saved first if there are none.
/// Returns them and whether they were made now.
pub fn load_or_create(data_dir: &Path) -> Result<(DevSecrets, bool), DevSecretsError> {
    if let Some(secrets) = load(data_dir)? {
        return Ok((secrets, false));
    }
    let path = path(data_dir);
    fs::create_dir_all(data_dir).map_err(|e| io_error(&path, &e))?;
    let secrets = DevSecrets {
        jwt_secret: random_secret("dev-secret"),
        api_key: random_secret("dev-key"),
    };
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| DevSecretsError::Io {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // Written in full to a private temporary file, then linked into place:
    // a crash never leaves a half-written file, and if another process got
    // there first its secrets win (the link fails and they are read).
    let tmp = data_dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let written = write_private(&tmp, text.as_bytes()).and_then(|()| fs::hard_link(&tmp, &path));
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok((secrets, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match load(data_dir)? {
            Some(theirs) => Ok((theirs, false)),
            None => Err(io_error(&path, &e)),
        },
        Err(e) => Err(io_error(&path, &e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A fresh secret: a readable prefix and 128 random bits.
pub fn random_secret(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(rand::random::<[u8; 16]>()))
}

fn io_error(path: &Path, e: &io::Error) -> DevSecretsError {
    DevSecretsError::Io {
        path: path.to_owned(),
        reason: plain_io_reason(e),
    }
}

/// `Permission denied (os error 13)` as `permission denied`.
fn plain_io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(load(&data).unwrap(), None);
        let (first, made) = load_or_create(&data).unwrap();
        assert!(made);
        let (again, made) = load_or_create(&data).unwrap();
        assert!(!made);
        assert_eq!(first, again);
        assert_eq!(load(&data).unwrap(), Some(first));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path(&data)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(&data).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "only {FILE_NAME} is left behind");
    }

    #[test]
    fn a_damaged_file_is_refused_with_its_path_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), "{\"jwtSecret\":").unwrap();
        let message = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(message.contains(FILE_NAME), "{message}");
        assert!(message.contains("delete it"), "{message}");
        assert_eq!(
            fs::read_to_string(path(dir.path())).unwrap(),
            "{\"jwtSecret\":"
        );
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_named_in_plain_words() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "x").unwrap();
        let message = load_or_create(&file).unwrap_err().to_string();
        assert!(message.contains("not-a-dir"), "{message}");
        assert!(!message.contains("os error"), "{message}");
    }
}
