//! Where a new durable consumer starts reading its stream.

use async_nats::jetstream;

/// Where a new durable consumer starts: at the first event the stream still holds (a new
/// service catches up on history within the stream's retention), or at the next event published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumerStart {
    /// Every event the stream holds.
    #[default]
    All,
    /// Only events published from now on.
    New,
}

impl std::str::FromStr for ConsumerStart {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(ConsumerStart::All),
            "new" => Ok(ConsumerStart::New),
            _ => {
                Err("all (every event the stream holds) or new (only events published from now on)")
            }
        }
    }
}

impl ConsumerStart {
    pub(crate) fn policy(self) -> jetstream::consumer::DeliverPolicy {
        match self {
            ConsumerStart::All => jetstream::consumer::DeliverPolicy::All,
            ConsumerStart::New => jetstream::consumer::DeliverPolicy::New,
        }
    }
}
