//! Conversion between [`Error`] and [`tonic::Status`] that keeps the stable code.
//!
//! The code travels in the `x-error-code` metadata entry; field errors travel as JSON in the status
//! details, so a client rebuilds the same typed error the server raised.

use tonic::metadata::{MetadataMap, MetadataValue};

use crate::{Error, FieldError, Kind};

/// The metadata key carrying the stable error code.
pub const CODE_METADATA_KEY: &str = "x-error-code";

/// The binary metadata key carrying a typed business refusal (a participant's `RefusalDetail`
/// message, encoded), beside the stable code.
pub const REFUSAL_METADATA_KEY: &str = "x-refusal-bin";

/// `status` with a typed business refusal attached ([`REFUSAL_METADATA_KEY`]).
pub fn with_refusal(mut status: tonic::Status, detail: &impl prost::Message) -> tonic::Status {
    let value = tonic::metadata::BinaryMetadataValue::from_bytes(&detail.encode_to_vec());
    status
        .metadata_mut()
        .insert_bin(REFUSAL_METADATA_KEY, value);
    status
}

/// The typed business refusal `status` carries, if any (and if it decodes as `M`).
pub fn refusal_of<M: prost::Message + Default>(status: &tonic::Status) -> Option<M> {
    let value = status.metadata().get_bin(REFUSAL_METADATA_KEY)?;
    let bytes = value.to_bytes().ok()?;
    M::decode(bytes.as_ref()).ok()
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        err.log();
        let mut metadata = MetadataMap::new();
        if let Ok(value) = MetadataValue::try_from(err.code()) {
            metadata.insert(CODE_METADATA_KEY, value);
        }
        let details = if err.fields().is_empty() {
            bytes_empty()
        } else {
            serde_json::to_vec(err.fields()).unwrap_or_default().into()
        };
        tonic::Status::with_details_and_metadata(
            err.kind().grpc_code(),
            err.message().to_owned(),
            details,
            metadata,
        )
    }
}

fn bytes_empty() -> tonic::codegen::Bytes {
    tonic::codegen::Bytes::new()
}

/// Rebuilds the platform error a peer sent. Statuses without our metadata (transport failures,
/// other servers) keep their gRPC meaning under the kind's default code.
pub fn status_to_error(status: &tonic::Status) -> Error {
    let kind = Kind::from_grpc_code(status.code());
    let code = status
        .metadata()
        .get(CODE_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fields: Vec<FieldError> = if status.details().is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(status.details()).unwrap_or_default()
    };
    let kind = match code.as_deref() {
        // INVALID_ARGUMENT stands for three HTTP kinds; the code says which
        Some("request.malformed") => Kind::BadRequest,
        Some("request.unsupported_media_type") => Kind::UnsupportedMediaType,
        _ => kind,
    };
    let message = if status.message().is_empty() {
        kind.title().to_owned()
    } else {
        status.message().to_owned()
    };
    let code = code.unwrap_or_else(|| kind.default_code().to_owned());
    Error::new(kind, code, message).with_fields(fields)
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let err = status_to_error(&status);
        err.with_source(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_fields_survive_the_wire() {
        let err = Error::validation(vec![FieldError::new("lines[0].sku", "format", "bad sku")]);
        let status: tonic::Status = err.into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let back = Error::from(status);
        assert_eq!(back.kind(), Kind::Validation);
        assert_eq!(back.code(), "request.invalid");
        assert_eq!(back.fields()[0].field, "lines[0].sku");
    }

    #[test]
    fn business_codes_round_trip() {
        for (err, grpc) in [
            (
                Error::failed_precondition("payment.declined", "insufficient funds"),
                tonic::Code::FailedPrecondition,
            ),
            (
                Error::not_found("inventory.unknown_sku", "unknown sku"),
                tonic::Code::NotFound,
            ),
            (
                Error::conflict("order.exists", "exists"),
                tonic::Code::AlreadyExists,
            ),
            (
                Error::bad_request("request.malformed", "bad"),
                tonic::Code::InvalidArgument,
            ),
            (
                Error::unavailable(std::io::Error::other("db down")),
                tonic::Code::Unavailable,
            ),
        ] {
            let (kind, code) = (err.kind(), err.code().to_owned());
            let status: tonic::Status = err.into();
            assert_eq!(status.code(), grpc);
            let back = status_to_error(&status);
            assert_eq!((back.kind(), back.code()), (kind, code.as_str()));
        }
    }

    #[test]
    fn internal_status_hides_source() {
        let status: tonic::Status =
            Error::internal(std::io::Error::other("password=hunter2")).into();
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn foreign_statuses_get_default_codes() {
        let status = tonic::Status::unavailable("tcp connect error");
        let err = status_to_error(&status);
        assert_eq!(err.kind(), Kind::Unavailable);
        assert_eq!(err.code(), "service.unavailable");
        assert!(err.kind().is_transient());
    }
}
