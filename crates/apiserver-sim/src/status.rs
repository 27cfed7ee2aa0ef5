//! Kubernetes `Status` bodies and the simulator's API error type.

use serde_json::{Value, json};

/// An API-level failure, rendered over HTTP as a JSON `Status` body and returned by the handle API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The resource type is not served (unknown path segment, group, version or kind).
    #[error("the server could not find the requested resource {resource}")]
    ResourceNotFound {
        /// What was asked for.
        resource: String,
    },
    /// The object does not exist.
    #[error("{plural}{dot}{group} \"{name}\" not found", dot = if group.is_empty() { "" } else { "." })]
    NotFound {
        /// Resource plural.
        plural: String,
        /// API group (empty for core).
        group: String,
        /// Kind, for the Status details.
        kind: String,
        /// Object name.
        name: String,
    },
    /// An object with this name already exists.
    #[error("{plural}{dot}{group} \"{name}\" already exists", dot = if group.is_empty() { "" } else { "." })]
    AlreadyExists {
        /// Resource plural.
        plural: String,
        /// API group (empty for core).
        group: String,
        /// Kind, for the Status details.
        kind: String,
        /// Object name.
        name: String,
    },
    /// The update carried a stale resourceVersion or failed a precondition.
    #[error("Operation cannot be fulfilled on {plural}{dot}{group} \"{name}\": {message}", dot = if group.is_empty() { "" } else { "." })]
    Conflict {
        /// Resource plural.
        plural: String,
        /// API group (empty for core).
        group: String,
        /// Kind, for the Status details.
        kind: String,
        /// Object name.
        name: String,
        /// What conflicted.
        message: String,
    },
    /// The request itself is malformed (bad JSON, bad query parameter, bad selector).
    #[error("{message}")]
    BadRequest {
        /// Human-readable cause.
        message: String,
    },
    /// The object failed validation.
    #[error("{kind} \"{name}\" is invalid: {message}")]
    Invalid {
        /// Kind of the object.
        kind: String,
        /// Object name (may be empty).
        name: String,
        /// What is invalid.
        message: String,
    },
    /// The requested resourceVersion or continue token is older than the compaction point.
    #[error("{message}")]
    Expired {
        /// Human-readable cause.
        message: String,
    },
    /// The requested resourceVersion is newer than the server's.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// The requested resourceVersion.
        requested: u64,
        /// The current global resourceVersion.
        current: u64,
    },
    /// The HTTP method is not supported on this path.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// The request body's media type is not supported.
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType {
        /// Media types accepted.
        accepted: &'static str,
    },
    /// A fault injected by a test.
    #[error("injected fault: {message}")]
    Injected {
        /// HTTP status code to return.
        code: u16,
        /// Seconds for the `Retry-After` header, if any.
        retry_after: Option<u32>,
        /// Human-readable cause.
        message: String,
    },
}

impl ApiError {
    /// HTTP status code of this error.
    pub fn code(&self) -> u16 {
        match self {
            Self::ResourceNotFound { .. } | Self::NotFound { .. } => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => 409,
            Self::BadRequest { .. } => 400,
            Self::Invalid { .. } => 422,
            Self::Expired { .. } => 410,
            Self::TooLargeResourceVersion { .. } => 504,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedMediaType { .. } => 415,
            Self::Injected { code, .. } => *code,
        }
    }

    /// The `reason` field of the Status body.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ResourceNotFound { .. } | Self::NotFound { .. } => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::BadRequest { .. } => "BadRequest",
            Self::Invalid { .. } => "Invalid",
            Self::Expired { .. } => "Expired",
            Self::TooLargeResourceVersion { .. } => "Timeout",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            Self::Injected { code, .. } => match code {
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                500 => "InternalError",
                _ => "Unknown",
            },
        }
    }

    /// Seconds to put in `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Injected { retry_after, .. } => *retry_after,
            Self::TooLargeResourceVersion { .. } => Some(1),
            _ => None,
        }
    }

    /// The JSON `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            Self::NotFound { plural, group, name, .. }
            | Self::AlreadyExists { plural, group, name, .. }
            | Self::Conflict { plural, group, name, .. } => Some(json!({"name": name, "group": group, "kind": plural})),
            Self::Invalid { kind, name, .. } => Some(json!({"name": name, "kind": kind})),
            _ => self.retry_after().map(|s| json!({"retryAfterSeconds": s})),
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

/// Convert a number of days since 1970-01-01 to a civil (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Format seconds since the Unix epoch as RFC 3339 (`2024-01-02T03:04:05Z`), as Kubernetes does.
pub fn rfc3339(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn status_bodies() {
        let e = ApiError::NotFound {
            plural: "secrets".into(),
            group: String::new(),
            kind: "Secret".into(),
            name: "x".into(),
        };
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "secrets \"x\" not found");
        let e = ApiError::Injected { code: 429, retry_after: Some(3), message: "slow down".into() };
        assert_eq!(e.to_status()["details"]["retryAfterSeconds"], 3);
        assert_eq!(e.reason(), "TooManyRequests");
    }
}
