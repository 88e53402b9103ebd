//! Google's JSON error format, as Compute Engine returns it:
//! `{"error": {"code", "message", "status", "errors": [{"message", "domain", "reason"}]}}`.

use serde_json::{Value, json};

/// The body of an error response.
pub fn body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "error": {
            "code": code,
            "message": message,
            "status": status_name(code),
            "errors": [{ "message": message, "domain": "global", "reason": reason }],
        }
    })
}

/// `404 notFound` for a resource path.
pub fn not_found(path: &str) -> (u16, Value) {
    let message = format!("The resource '{path}' was not found");
    (404, body(404, "notFound", &message))
}

/// `409 alreadyExists` for a resource path.
pub fn already_exists(path: &str) -> (u16, Value) {
    let message = format!("The resource '{path}' already exists");
    (409, body(409, "alreadyExists", &message))
}

/// `400 invalid` with a message.
pub fn invalid(message: &str) -> (u16, Value) {
    (400, body(400, "invalid", message))
}

/// A `google.rpc.Status` error as the newer APIs (Secret Manager) return it:
/// `{"error": {"code", "message", "status"}}`, without `errors[]`.
pub fn rpc(code: u16, message: &str) -> (u16, Value) {
    (
        code,
        json!({ "error": { "code": code, "message": message, "status": status_name(code) } }),
    )
}

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}
