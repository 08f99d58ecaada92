//! Commands of several tenants answered as one batch, each tenant's share in its own
//! tenant-scoped work (row-level security admits one tenant per transaction).

use std::collections::BTreeMap;
use std::future::Future;

use longship_errors::Error;

use crate::TenantId;

/// Answers `items` (each with its tenant) in their order: an item `validate` refuses is answered
/// with its error at once; the others are grouped by tenant, and `run` gets each tenant's items
/// (in the batch's order) and answers them in that order. The tenants' groups run side by side.
/// An item a group left unanswered (its task panicked, or `run` answered too few) gets an internal
/// error naming `what` (e.g. "Reserve").
pub async fn per_tenant<I, T, V, R, Fut>(
    what: &'static str,
    items: Vec<(TenantId, I)>,
    validate: V,
    run: R,
) -> Vec<Result<T, Error>>
where
    I: Send + 'static,
    T: Send + 'static,
    V: Fn(&I) -> Result<(), Error>,
    R: Fn(TenantId, Vec<I>) -> Fut,
    Fut: Future<Output = Vec<Result<T, Error>>> + Send + 'static,
{
    let mut answers: Vec<Option<Result<T, Error>>> = (0..items.len()).map(|_| None).collect();
    let mut groups: BTreeMap<TenantId, (Vec<usize>, Vec<I>)> = BTreeMap::new();
    for (i, (tenant, item)) in items.into_iter().enumerate() {
        match validate(&item) {
            Ok(()) => {
                let group = groups.entry(tenant).or_default();
                group.0.push(i);
                group.1.push(item);
            }
            Err(e) => answers[i] = Some(Err(e)),
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (tenant, (positions, group)) in groups {
        let answered = run(tenant, group);
        tasks.spawn(async move {
            positions
                .into_iter()
                .zip(answered.await)
                .collect::<Vec<_>>()
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(group) => {
                for (i, answer) in group {
                    answers[i] = Some(answer);
                }
            }
            Err(e) => tracing::error!(error = %e, "a tenant's batched {what} panicked"),
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(Error::internal(std::io::Error::other(format!(
                    "a batched {what} left an order unanswered"
                ))))
            })
        })
        .collect()
}
