//! The one status vocabulary of sync jobs. Stored and emitted statuses are
//! exactly the contract's five words; input also takes the aliases backends
//! use, in any case, and normalises them here, in one pure function.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A job's status as stored and emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Idle,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// The words input may use, for error messages.
pub const ACCEPTED: &str = "idle, running, completed, failed, cancelled \
    (or in_progress, complete, success, error, canceled; any case)";

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Idle,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Normalises an input word: the contract's words and the aliases
    /// `in_progress`, `complete`, `success`, `error`, `canceled`, in any
    /// case, surrounding blanks ignored. Anything else is an error naming
    /// the accepted words.
    pub fn parse(input: &str) -> Result<Status, String> {
        let word = input.trim().to_ascii_lowercase();
        Ok(match word.as_str() {
            "idle" => Status::Idle,
            "running" | "in_progress" => Status::Running,
            "completed" | "complete" | "success" => Status::Completed,
            "failed" | "error" => Status::Failed,
            "cancelled" | "canceled" => Status::Cancelled,
            _ => {
                return Err(format!("status {input:?} is not one of {ACCEPTED}"));
            }
        })
    }

    /// Completed, failed or cancelled: the job's worker is done with it.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_words_and_aliases_normalise_in_any_case() {
        let cases = [
            ("idle", Status::Idle),
            ("running", Status::Running),
            ("in_progress", Status::Running),
            ("IN_PROGRESS", Status::Running),
            ("completed", Status::Completed),
            ("Complete", Status::Completed),
            ("SUCCESS", Status::Completed),
            ("failed", Status::Failed),
            ("Error", Status::Failed),
            ("cancelled", Status::Cancelled),
            ("canceled", Status::Cancelled),
            (" CANCELED ", Status::Cancelled),
        ];
        for (input, want) in cases {
            assert_eq!(Status::parse(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn emitted_words_are_exactly_the_contracts() {
        let words: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            ["idle", "running", "completed", "failed", "cancelled"]
        );
        for status in Status::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
            assert_eq!(Status::parse(status.as_str()), Ok(status));
        }
    }

    #[test]
    fn other_words_are_refused_naming_the_accepted_ones() {
        for bad in [
            "",
            "done",
            "runing",
            "in progress",
            "pending",
            "ok",
            "cancel",
        ] {
            let err = Status::parse(bad).expect_err(bad);
            assert!(
                err.contains("idle, running, completed, failed, cancelled"),
                "{err}"
            );
            assert!(err.contains("in_progress"), "{err}");
        }
    }
}
