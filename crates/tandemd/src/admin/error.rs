//! API errors: one JSON shape for every refusal, `{"error":{"code":..,"message":..}}`, so
//! scripts branch on `code` and people read `message` (check-config's words for configs).

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

use crate::ApplyError;

pub type Body = Full<Bytes>;

/// A refused request: the HTTP status follows from the code.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// For `method_not_allowed`: the methods the path takes (the `Allow` header).
    pub allow: Option<String>,
    /// Set when the client sent what no endpoint takes (counted, see `rejections`).
    pub rejected: Option<super::rejections::Rejected>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    NotFound,
    Invalid,
    Unauthorized,
    MethodNotAllowed,
    /// A request body over the limit.
    TooLarge,
    /// The cluster cannot answer now (no leader reachable): retry later.
    Unavailable,
    Failed,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotFound => "not_found",
            Code::Invalid => "invalid",
            Code::Unauthorized => "unauthorized",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::TooLarge => "too_large",
            Code::Unavailable => "unavailable",
            Code::Failed => "failed",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Invalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            allow: None,
            rejected: None,
        }
    }

    /// A request the client got wrong in a way worth counting (`why`).
    pub fn rejected(
        code: Code,
        why: super::rejections::Rejected,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            rejected: Some(why),
            ..Self::new(code, message)
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::Invalid, message)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message }
        });
        let mut response = json_response(self.code.status(), &body);
        if let Some(allow) = self
            .allow
            .and_then(|a| header::HeaderValue::from_str(&a).ok())
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        if self.code == Code::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Invalid(m) => ApiError::new(Code::Invalid, m),
            ApplyError::NotFound(m) => ApiError::new(Code::NotFound, m),
            ApplyError::Unavailable(m) => ApiError::new(Code::Unavailable, m),
            ApplyError::Failed(e) => ApiError::new(Code::Failed, format!("{e:#}")),
        }
    }
}

/// A JSON body with the given status (pretty-printed: people read it with curl too).
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut text = serde_json::to_vec_pretty(value).expect("API views always serialize");
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("a static status and header make a valid response")
}
