//! Every error the HTTP side can answer with, and the one place they become responses:
//! `{"error": code, "message": …}` with the right status.

use std::convert::Infallible;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::jobs::intake::IntakeError;
use crate::jobs::JobError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "outside_media_roots", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn reject(self) -> Rejection {
        warp::reject::custom(self)
    }
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> ApiError {
        let message = error.to_string();
        match error {
            JobError::NotFound(_) => ApiError::not_found(message),
            JobError::Source { .. } => ApiError::not_found(message),
            JobError::ShuttingDown => ApiError::unavailable("shutting_down", message),
            JobError::Probe(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable_source",
                message,
            ),
            JobError::Store(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", message)
            }
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(error: IntakeError) -> ApiError {
        let message = error.to_string();
        match error {
            IntakeError::Relative(_) => ApiError::bad_request("relative_path", message),
            IntakeError::OutsideRoots(_) => ApiError::forbidden(message),
            IntakeError::Missing(_) => ApiError::not_found(message),
            IntakeError::NotAFile(_) => ApiError::bad_request("not_a_file", message),
            IntakeError::Job(job) => job.into(),
        }
    }
}

pub fn json_error(status: StatusCode, code: &str, message: &str) -> warp::reply::Response {
    let body = warp::reply::json(&json!({ "error": code, "message": message }));
    warp::reply::with_status(body, status).into_response()
}

pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, code, message) = if let Some(error) = rejection.find::<ApiError>() {
        (error.status, error.code, error.message.clone())
    } else if rejection.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route".to_string(),
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request bodies are limited to 64 KiB".to_string(),
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header".to_string(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route".to_string(),
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        (StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
    } else if let Some(e) = rejection.find::<warp::cors::CorsForbidden>() {
        (StatusCode::FORBIDDEN, "cors_forbidden", e.to_string())
    } else {
        tracing::warn!("unhandled rejection: {rejection:?}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error".to_string(),
        )
    };
    Ok(json_error(status, code, &message))
}
