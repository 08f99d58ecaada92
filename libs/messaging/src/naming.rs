//! Stream and subject names, with an optional environment prefix.

/// One producing service's stream, e.g. `ORDERS` over `orders.>`.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    /// Stream name without prefix (`ORDERS`).
    pub name: &'static str,
    /// Subject root without prefix (`orders`).
    pub subject_root: &'static str,
}

impl StreamSpec {
    /// The stream `name` over `subject_root.>`.
    pub const fn new(name: &'static str, subject_root: &'static str) -> StreamSpec {
        StreamSpec { name, subject_root }
    }
}

/// Applies the configured prefix to streams and subjects: with prefix `dev`, stream `ORDERS` is
/// `DEV_ORDERS` and subject `orders.v1.x` is `dev.orders.v1.x`.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    prefix: String,
}

impl Naming {
    /// Names under `prefix` (empty for none).
    pub fn new(prefix: &str) -> Naming {
        Naming {
            prefix: prefix.to_owned(),
        }
    }

    /// The subject an event type is published on.
    pub fn subject(&self, event_type: &str) -> String {
        if self.prefix.is_empty() {
            event_type.to_owned()
        } else {
            format!("{}.{event_type}", self.prefix)
        }
    }

    /// The event type a subject carries (the inverse of [`Naming::subject`]).
    pub fn event_type<'a>(&self, subject: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            subject
        } else {
            subject
                .strip_prefix(&self.prefix)
                .and_then(|s| s.strip_prefix('.'))
                .unwrap_or(subject)
        }
    }

    /// A stream's name.
    pub fn stream(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!(
                "{}_{name}",
                self.prefix.to_ascii_uppercase().replace('-', "_")
            )
        }
    }

    /// A durable consumer's name.
    pub fn consumer(&self, name: &str) -> String {
        name.to_owned()
    }

    /// The dead-letter subject for messages `consumer` gave up on.
    pub fn dead_letter_subject(&self, consumer: &str) -> String {
        self.subject(&format!("deadletter.{consumer}"))
    }

    pub(crate) fn dead_letter_stream(&self) -> String {
        self.stream("DEADLETTER")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixing() {
        let plain = Naming::new("");
        assert_eq!(plain.subject("orders.v1.a"), "orders.v1.a");
        assert_eq!(plain.stream("ORDERS"), "ORDERS");
        let dev = Naming::new("lstab12");
        assert_eq!(dev.subject("orders.v1.a"), "lstab12.orders.v1.a");
        assert_eq!(dev.event_type("lstab12.orders.v1.a"), "orders.v1.a");
        assert_eq!(dev.stream("ORDERS"), "LSTAB12_ORDERS");
        assert_eq!(
            dev.dead_letter_subject("inventory"),
            "lstab12.deadletter.inventory"
        );
    }
}
