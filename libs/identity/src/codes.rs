//! The codes a gRPC caller gets when its identity does not allow the call.

longship_errors::error_codes! {
    /// Service identity: who may call a gRPC service of the platform.
    pub enum IdentityCode in "identity" {
        /// No client certificate (or one without a Longship SPIFFE ID).
        PeerUnauthenticated = ("peer.unauthenticated", Unauthenticated, "no client certificate of the platform CA with a spiffe://longship/<namespace>/<service> identity: this service takes calls only from platform services"),
        /// A platform service that may not call this one.
        PeerForbidden = ("peer.forbidden", PermissionDenied, "the calling service's certificate is valid, but that service may not call this one"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_codes_are_in_the_catalogue() {
        let catalogue = include_str!("../../../docs/errors.md");
        if let Err(e) = longship_errors::check_catalogue::<IdentityCode>(catalogue) {
            panic!("{e}");
        }
    }
}
