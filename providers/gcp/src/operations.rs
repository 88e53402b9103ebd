//! Long-running operations: every insert, delete and `set*` call answers with an
//! Operation; [`Compute::wait`] polls its `selfLink` until `status` is `DONE` and turns an
//! `error` in it into an [`ApiError`] (quota failures usually arrive this way, as
//! `QUOTA_EXCEEDED`).

use std::time::Duration;

use serde_json::Value;

use crate::compute::{ApiError, Compute};

impl Compute {
    /// Polls `operation` to `DONE`; returns the final operation.
    pub async fn wait(&self, operation: Value) -> Result<Value, ApiError> {
        let deadline = tokio::time::Instant::now() + self.settings.operation_timeout;
        let mut current = operation;
        let mut delay = self.settings.poll_interval;
        loop {
            if current["status"] == "DONE" {
                return match operation_error(&current) {
                    Some(error) => Err(error),
                    None => Ok(current),
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::transport(format!(
                    "operation {} did not finish within {}s",
                    current["name"].as_str().unwrap_or("?"),
                    self.settings.operation_timeout.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            let Some(link) = current["selfLink"].as_str().map(str::to_owned) else {
                return Err(ApiError::transport(
                    "an operation without selfLink".to_owned(),
                ));
            };
            current = self.get_url(&link).await?;
        }
    }
}

/// The error a finished operation carries, if any.
fn operation_error(operation: &Value) -> Option<ApiError> {
    let first = operation["error"]["errors"].as_array()?.first()?.clone();
    let code = first["code"].as_str().unwrap_or("UNKNOWN");
    let status = operation["httpErrorStatusCode"].as_u64().unwrap_or(400) as u16;
    Some(ApiError {
        status,
        reason: lower_camel(code),
        message: first["message"].as_str().unwrap_or(code).to_owned(),
    })
}

/// `QUOTA_EXCEEDED` → `quotaExceeded`, the spelling of synchronous error reasons.
fn lower_camel(code: &str) -> String {
    let mut out = String::new();
    for (i, word) in code.split('_').enumerate() {
        let lower = word.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_errors_keep_the_message() {
        let op = serde_json::json!({"status": "DONE", "httpErrorStatusCode": 403,
            "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": "Quota 'CPUS' exceeded."}]}});
        let e = operation_error(&op).expect("an error");
        assert_eq!(e.reason, "quotaExceeded");
        assert_eq!(e.status, 403);
        assert_eq!(e.message, "Quota 'CPUS' exceeded.");
    }
}
