//! Bounded label values: whatever a client sends, a metric label (and a span name) takes one of a
//! fixed set of values, so invented HTTP methods, random paths or unknown gRPC methods cannot grow
//! `/metrics` (every distinct label value is a series kept for the life of the process).

use std::collections::HashSet;
use std::sync::Arc;

/// The one value every unknown HTTP method and gRPC method is counted under (OpenTelemetry's
/// convention for `http.request.method`).
pub const OTHER: &str = "_OTHER";

/// The `route` label of requests no route matched (unknown paths, whatever they are).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method as a label: one of the nine methods of RFC 9110 and RFC 5789, or [`OTHER`].
pub fn http_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::CONNECT => "CONNECT",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::PATCH => "PATCH",
        _ => OTHER,
    }
}

/// The gRPC methods a server counts by name (`/package.Service/Method`); calls to any other path
/// are counted as [`OTHER`].
#[derive(Debug, Clone, Default)]
pub struct GrpcMethods {
    known: Arc<HashSet<String>>,
}

impl GrpcMethods {
    /// The set of `paths` (each `/package.Service/Method`).
    pub fn new(paths: impl IntoIterator<Item = impl Into<String>>) -> GrpcMethods {
        GrpcMethods {
            known: Arc::new(paths.into_iter().map(Into::into).collect()),
        }
    }

    /// `path` when it is a known method, else [`OTHER`].
    pub fn label<'a>(&self, path: &'a str) -> &'a str {
        if self.known.contains(path) {
            path
        } else {
            OTHER
        }
    }

    /// Every known method, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.known.iter().map(String::as_str).collect();
        paths.sort_unstable();
        paths
    }
}

/// `(service, method)` of a `/package.Service/Method` path (`rpc.service` and `rpc.method`).
pub fn split_grpc_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// Every gRPC status code by the name the metrics use (`Ok`, `NotFound`, ...), in code order.
pub fn grpc_code_names() -> impl Iterator<Item = String> {
    (0..=16).map(|c| grpc_code_name(c).to_owned())
}

/// The metric label of a numeric gRPC status (`tonic::Code`'s name; unknown numbers are `Unknown`).
pub fn grpc_code_name(code: i32) -> &'static str {
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "Ok",
        tonic::Code::Cancelled => "Cancelled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_and_paths_share_one_value() {
        assert_eq!(http_method(&http::Method::GET), "GET");
        assert_eq!(http_method(&http::Method::PATCH), "PATCH");
        let invented = http::Method::from_bytes(b"FROBNICATE").unwrap_or_default();
        assert_eq!(http_method(&invented), OTHER);
        let known = GrpcMethods::new(["/a.v1.S/Get"]);
        assert_eq!(known.label("/a.v1.S/Get"), "/a.v1.S/Get");
        assert_eq!(known.label("/a.v1.S/Invented"), OTHER);
        assert_eq!(known.label("/x"), OTHER);
    }

    #[test]
    fn grpc_paths_split_into_service_and_method() {
        assert_eq!(split_grpc_path("/a.v1.S/Get"), Some(("a.v1.S", "Get")));
        assert_eq!(split_grpc_path("/a.v1.S/"), None);
        assert_eq!(split_grpc_path("nope"), None);
        assert_eq!(split_grpc_path("/a/b/c"), None);
        assert_eq!(grpc_code_names().count(), 17);
        assert_eq!(grpc_code_name(5), "NotFound");
        assert_eq!(grpc_code_name(99), "Unknown");
    }
}
