//! The API's failures and their HTTP statuses, in one place; the body is `{"error": "…"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::queue::QueueError;
use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("this needs a valid token: `Authorization: Bearer TOKEN`")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The run is in no state for it, or its gate does not hold.
    #[error("{0}")]
    Refused(String),
    #[error("the body is larger than the {0} bytes the agent takes")]
    TooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let text = e.to_string();
        match e {
            EngineError::Invalid(_)
                if text.starts_with("no run") || text.contains(" has no job ") =>
            {
                ApiError::NotFound(text)
            }
            EngineError::Invalid(_) => ApiError::Invalid(text),
            EngineError::Load(_) | EngineError::Plan { .. } => ApiError::Invalid(text),
            EngineError::Refused(_) => ApiError::Refused(text),
            EngineError::Unavailable(_) => ApiError::Unavailable(text),
            EngineError::Internal(_) => ApiError::Internal(text),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(why) = &self {
            tracing::error!("{why}");
        }
        let body = axum::Json(serde_json::json!({ "error": self.to_string() }));
        (self.status(), body).into_response()
    }
}
