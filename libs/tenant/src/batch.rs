//! Commands of several tenants answered as one batch: one transaction for every item whatever its
//! tenant (a tenant set, [`crate::begin_set`]), falling back to the items one by one when that
//! transaction fails as a whole; and the plumbing of the set statements such a batch runs: its
//! items in (tenant, key) order ([`key_order`]), the rows they name locked in that order
//! ([`lock_rows`]).

use std::collections::HashSet;
use std::future::Future;

use longship_errors::Error;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::TenantId;

/// Answers `items` (each with its tenant) in their order.
///
/// - An item `validate` refuses is answered with its error at once.
/// - The valid items, each `(tenant, key(item))` once, go to `set` together (all tenants in one
///   call, in the batch's order), which answers them in that order or fails as a whole (`Err`: it
///   wrote nothing); then each of them is handed to `one` in turn. A single valid item goes to
///   `one` directly. A set that fails counts on the `fallbacks` counter (a metric the service
///   registers).
/// - An item whose `(tenant, key)` came earlier in the batch (the same order twice) is handed to
///   `one` after the set, so it is answered as the repeat of a single call would be.
///
/// `what` (e.g. "Reserve") names the command in logs and in the internal error of an item `set`
/// left unanswered.
pub async fn in_one_set<I, T, V, K, S, SFut, O, OFut>(
    what: &'static str,
    fallbacks: &'static str,
    items: Vec<(TenantId, I)>,
    validate: V,
    key: K,
    set: S,
    one: O,
) -> Vec<Result<T, Error>>
where
    I: Clone,
    V: Fn(&I) -> Result<(), Error>,
    K: Fn(&I) -> Uuid,
    S: FnOnce(Vec<(TenantId, I)>) -> SFut,
    SFut: Future<Output = Result<Vec<Result<T, Error>>, Error>>,
    O: Fn(TenantId, I) -> OFut,
    OFut: Future<Output = Result<T, Error>>,
{
    let mut answers: Vec<Option<Result<T, Error>>> = (0..items.len()).map(|_| None).collect();
    let mut seen: HashSet<(TenantId, Uuid)> = HashSet::new();
    let (mut first, mut repeats) = (Vec::new(), Vec::new());
    for (i, (tenant, item)) in items.into_iter().enumerate() {
        if let Err(e) = validate(&item) {
            answers[i] = Some(Err(e));
        } else if seen.insert((tenant.clone(), key(&item))) {
            first.push((i, tenant, item));
        } else {
            repeats.push((i, tenant, item));
        }
    }
    if first.len() > 1 {
        let batch: Vec<(TenantId, I)> = first
            .iter()
            .map(|(_, tenant, item)| (tenant.clone(), item.clone()))
            .collect();
        match set(batch).await {
            Ok(answered) if answered.len() == first.len() => {
                for ((i, _, _), answer) in first.drain(..).zip(answered) {
                    answers[i] = Some(answer);
                }
            }
            Ok(answered) => {
                tracing::error!(
                    items = first.len(),
                    answers = answered.len(),
                    "a batched {what} answered a wrong number of items"
                );
                first.clear();
            }
            Err(e) => {
                metrics::counter!(fallbacks).increment(1);
                tracing::warn!(error = %e, items = first.len(), "batched {what} failed as a whole; answering one by one");
            }
        }
    }
    for (i, tenant, item) in first.into_iter().chain(repeats) {
        answers[i] = Some(one(tenant, item).await);
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(Error::internal(std::io::Error::other(format!(
                    "a batched {what} left an item unanswered"
                ))))
            })
        })
        .collect()
}

/// The distinct tenants of `items`, sorted: the set a batch's transaction is opened for.
pub fn tenants_of<I>(items: &[(TenantId, I)]) -> Vec<TenantId> {
    let mut tenants: Vec<TenantId> = items.iter().map(|(t, _)| t.clone()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    tenants
}

/// The positions of `items` in (tenant, `key`) order: the order a batch claims its items' rows in,
/// the same in every batch, so batches and single commands cannot deadlock.
pub fn key_order<I, K: Ord>(items: &[(TenantId, I)], key: impl Fn(&I) -> K) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| (&items[a].0, key(&items[a].1)).cmp(&(&items[b].0, key(&items[b].1))));
    order
}

/// Locks the rows of `table` that `wanted` names (`(tenant, key)` pairs, matched on `tenant_id`
/// and `key_column`; sorted and deduplicated here, so every batch locks them in (tenant, key)
/// byte order) with `FOR UPDATE`, in one statement, and reads `columns` of each as an `R`, with
/// its tenant. A pair with no row is left out. `table`, `key_column` and `columns` are SQL text
/// (the caller's constants, never input).
pub async fn lock_rows<R>(
    conn: &mut PgConnection,
    table: &'static str,
    key_column: &'static str,
    columns: &'static str,
    mut wanted: Vec<(&str, &str)>,
) -> Result<Vec<(TenantId, R)>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, PgRow>,
{
    wanted.sort_unstable();
    wanted.dedup();
    let (tenants, keys): (Vec<&str>, Vec<&str>) = wanted.into_iter().unzip();
    let sql = format!(
        "SELECT u.tenant_id, q.*
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(tenant_id, key, n)
         CROSS JOIN LATERAL (
             SELECT {columns} FROM {table}
             WHERE tenant_id = u.tenant_id AND {key_column} = u.key FOR UPDATE
         ) AS q
         ORDER BY u.n"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&tenants)
        .bind(&keys)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let tenant: &str = row.try_get("tenant_id")?;
            let tenant = TenantId::parse(tenant).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok((tenant, R::from_row(row)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(t: &str) -> TenantId {
        TenantId::parse(t).expect("valid")
    }

    #[tokio::test]
    async fn one_set_for_all_tenants_repeats_after_and_refusals_alone() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let items = vec![
            (tenant("acme"), (a, 1)),
            (tenant("globex"), (a, 2)),
            (tenant("acme"), (b, -1)),
            (tenant("acme"), (a, 3)),
        ];
        let sets = std::cell::RefCell::new(Vec::new());
        let ones = std::cell::RefCell::new(Vec::new());
        let answers = in_one_set(
            "Test",
            "test_batch_fallbacks_total",
            items,
            |(_, n): &(Uuid, i32)| {
                if *n < 0 {
                    Err(Error::internal(std::io::Error::other("negative")))
                } else {
                    Ok(())
                }
            },
            |(id, _)| *id,
            |batch: Vec<(TenantId, (Uuid, i32))>| {
                sets.borrow_mut().push(batch.len());
                async move { Ok(batch.iter().map(|(_, (_, n))| Ok(n * 10)).collect()) }
            },
            |_, (_, n)| {
                ones.borrow_mut().push(n);
                async move { Ok(n * 100) }
            },
        )
        .await;
        // acme's and globex's order `a` are different orders: both in the one set
        assert_eq!(*sets.borrow(), [2]);
        // acme's `a` a second time: answered after the set, as a single call
        assert_eq!(*ones.borrow(), [3]);
        assert_eq!(answers[0].as_ref().ok(), Some(&10));
        assert_eq!(answers[1].as_ref().ok(), Some(&20));
        assert!(answers[2].is_err());
        assert_eq!(answers[3].as_ref().ok(), Some(&300));
    }

    #[tokio::test]
    async fn a_failed_set_falls_back_to_the_items_one_by_one() {
        let items: Vec<(TenantId, Uuid)> = vec![
            (tenant("acme"), Uuid::now_v7()),
            (tenant("globex"), Uuid::now_v7()),
        ];
        let answers = in_one_set(
            "Test",
            "test_batch_fallbacks_total",
            items,
            |_| Ok(()),
            |id| *id,
            |_| async {
                Err::<Vec<Result<u8, Error>>, _>(Error::unavailable(std::io::Error::other("down")))
            },
            |t, _| async move { Ok(t.as_str().len() as u8) },
        )
        .await;
        let answers: Vec<Option<u8>> = answers.into_iter().map(Result::ok).collect();
        assert_eq!(answers, [Some(4), Some(6)]);
    }

    #[test]
    fn items_are_ordered_by_tenant_then_key() {
        let items = vec![
            (tenant("globex"), 1),
            (tenant("acme"), 2),
            (tenant("acme"), 1),
        ];
        assert_eq!(key_order(&items, |k| *k), [2, 1, 0]);
    }

    #[test]
    fn the_tenant_set_is_sorted_and_distinct() {
        let items = vec![(tenant("b"), ()), (tenant("a"), ()), (tenant("b"), ())];
        assert_eq!(tenants_of(&items), [tenant("a"), tenant("b")]);
    }
}
