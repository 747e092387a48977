//! INVALID_ARGUMENT in the standard rich error model: every problem as a
//! `google.rpc.BadRequest` field violation, so a client can show it next to the field.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// INVALID_ARGUMENT with one violation per (field, description).
pub fn invalid(message: String, violations: impl IntoIterator<Item = (String, String)>) -> Status {
    let mut details = ErrorDetails::new();
    for (field, description) in violations {
        details.add_bad_request_violation(field, description);
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// INVALID_ARGUMENT about one field; the message is also the violation's description.
pub fn bad_request(field: &str, message: String) -> Status {
    invalid(message.clone(), [(field.to_owned(), message)])
}
