//! Per-RPC authorization by the caller's identity: each gRPC service is registered with a
//! [`GrpcAccess`] declaring who may call it, and [`Authorized`] enforces it before the service (and
//! its tenant interceptor) sees the request, so `x-tenant-id` is trusted only from an allowed caller.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::IntoResponse;
use longship_errors::Error;
use longship_tenant::Authenticator;
use tonic::body::Body;
use tonic::server::NamedService;

use crate::{IdentityCode, Mtls, PeerInfo};

/// Who may call a gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcAccess {
    /// Only these platform services (by the service name in their certificate's SPIFFE ID, in this
    /// service's namespace). Without a certificate: `UNAUTHENTICATED`; another service:
    /// `PERMISSION_DENIED`. Their `x-tenant-id` is trusted.
    Services(&'static [&'static str]),
    /// Callers from outside the platform (no client certificate needed): every call carries the
    /// tenant's credentials exactly as over HTTP (`authorization: Bearer <JWT>`, or `x-tenant-id`
    /// where `AUTH_ALLOW_TENANT_HEADER=true`); the tenant of the verified token replaces any
    /// `x-tenant-id` the caller sent.
    Tenants,
}

/// What [`Authorized`] checks against: this service's mTLS (absent when `GRPC_MTLS=off`) and the
/// tenant authenticator of its HTTP API.
#[derive(Debug, Clone)]
pub struct Authorizer {
    mtls: Option<Arc<Mtls>>,
    authenticator: Arc<Authenticator>,
}

impl Authorizer {
    /// An authorizer for a service with `mtls` (or without) and `authenticator`.
    pub fn new(mtls: Option<Arc<Mtls>>, authenticator: Arc<Authenticator>) -> Authorizer {
        Authorizer {
            mtls,
            authenticator,
        }
    }

    /// `service` guarded by `access`.
    pub fn guard<S: NamedService>(&self, access: GrpcAccess, service: S) -> Authorized<S> {
        if matches!(access, GrpcAccess::Services(_)) && self.mtls.is_some() {
            crate::metric_families::zero_refusals(S::NAME);
        }
        Authorized {
            inner: service,
            access,
            authorizer: self.clone(),
        }
    }

    #[allow(clippy::result_large_err)] // reason: the refusal is answered as it is
    fn check(
        &self,
        access: GrpcAccess,
        service: &'static str,
        request: &mut http::Request<Body>,
    ) -> Result<(), Error> {
        match access {
            GrpcAccess::Tenants => {
                let tenant = self.authenticator.authenticate(request.headers())?;
                if let Ok(value) = http::HeaderValue::from_str(tenant.as_str()) {
                    request
                        .headers_mut()
                        .insert(longship_tenant::grpc::METADATA_KEY, value);
                }
                Ok(())
            }
            GrpcAccess::Services(allowed) => {
                let Some(mtls) = &self.mtls else {
                    // GRPC_MTLS=off: no identities (warned about at start-up)
                    return Ok(());
                };
                let peer = request.extensions().get::<PeerInfo>();
                let path = request.uri().path();
                let Some(caller) = peer.and_then(PeerInfo::identity) else {
                    refused(service, "unauthenticated");
                    tracing::warn!(peer = ?peer.and_then(PeerInfo::remote_addr), path, "gRPC call without a platform certificate refused");
                    return Err(Error::from_code(IdentityCode::PeerUnauthenticated));
                };
                let own = mtls.own_identity();
                if caller.namespace() == own.namespace() && allowed.contains(&caller.service()) {
                    return Ok(());
                }
                refused(service, "permission_denied");
                tracing::warn!(caller = %caller, path, "gRPC call from a service that may not call this one refused");
                Err(Error::coded(
                    IdentityCode::PeerForbidden,
                    format!("{caller} may not call {service}"),
                ))
            }
        }
    }
}

fn refused(service: &'static str, reason: &'static str) {
    metrics::counter!("grpc_peer_refusals_total", "service" => service, "reason" => reason)
        .increment(1);
}

/// A gRPC service behind its [`GrpcAccess`] check.
#[derive(Debug, Clone)]
pub struct Authorized<S> {
    inner: S,
    access: GrpcAccess,
    authorizer: Authorizer,
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Authorized<S>
where
    S: tower::Service<http::Request<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> BoxFuture {
        match self.authorizer.check(self.access, S::NAME, &mut request) {
            Ok(()) => {
                let call = self.inner.call(request);
                Box::pin(async move { call.await.map(IntoResponse::into_response) })
            }
            Err(error) => {
                let status = tonic::Status::from(error);
                let response = status.into_http::<axum::body::Body>();
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}
