//! Service identity inside the platform: every gRPC connection is mutual TLS with certificates of
//! the platform CA ([`Mtls`], its files re-read when they change), the caller's identity is the
//! certificate's SPIFFE URI SAN `spiffe://longship/<namespace>/<service>` ([`ServiceIdentity`],
//! never a header), and each gRPC service declares who may call it ([`GrpcAccess`], enforced per
//! RPC by [`Authorized`] before any handler or tenant interceptor runs).
//!
//! Servers accept connections through [`incoming`] (the TLS handshake, the peer's identity as the
//! connection's [`PeerInfo`]); clients configure their endpoints with [`ClientTls`], which checks
//! that the server is the service it meant to reach.

mod authz;
mod client;
mod codes;
mod material;
mod metric_families;
#[cfg(feature = "pki")]
pub mod pki;
mod server;
mod spiffe;

pub use authz::{Authorized, Authorizer, GrpcAccess};
pub use client::ClientTls;
pub use codes::IdentityCode;
pub use material::{Mtls, MtlsConfig, TlsFiles};
pub use server::{AcceptLimits, Dropped, PeerInfo, PeerIo, incoming};
pub use spiffe::{ServiceIdentity, TRUST_DOMAIN};
