//! The items of a set-based batch (a consumer's `consume_many`): each event's tenant, the key of
//! the row it acts on (an order id, say) and the trace context to store with what it writes, and
//! the plumbing every set-based statement needs around them: each `(tenant, key)` once, and the
//! columns to bind beside `unnest` for one new event per item, and the statement run with them
//! ([`fetch_per_item`]).

use std::collections::HashMap;
use std::hash::Hash;

use longship_tenant::TenantId;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::Delivered;

/// One event's unit of work in a set-based batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetItem<K> {
    /// The event's tenant: every row of the item is keyed by it.
    pub tenant: TenantId,
    /// The row the event acts on (e.g. its order id).
    pub key: K,
    /// The trace context stored with the event written on the item's behalf.
    pub traceparent: Option<String>,
}

impl<E> Delivered<E> {
    /// This event's item in a set-based batch, acting on `key`.
    pub fn item<K>(&self, key: K) -> SetItem<K> {
        SetItem {
            tenant: self.tenant.clone(),
            key,
            traceparent: self.traceparent(),
        }
    }
}

/// Each `(tenant, key)` of `items` once, in order of first appearance, and each item's slot: the
/// index of its `(tenant, key)` among them and whether it is that first appearance (a later one
/// reads the first one's result, as a repeated single call would).
pub fn first_of_each<K: Eq + Hash>(items: &[SetItem<K>]) -> (Vec<&SetItem<K>>, Vec<(usize, bool)>) {
    let mut first: HashMap<(&TenantId, &K), usize> = HashMap::with_capacity(items.len());
    let mut unique: Vec<&SetItem<K>> = Vec::with_capacity(items.len());
    let slots = items
        .iter()
        .map(|item| {
            let next = unique.len();
            let slot = *first.entry((&item.tenant, &item.key)).or_insert(next);
            if slot == next {
                unique.push(item);
            }
            (slot, slot == next)
        })
        .collect();
    (unique, slots)
}

/// The columns a set-based statement binds for `items` writing one event each, in the items'
/// order: tenants, keys, a new event id (UUID v7) per item, trace contexts. Bind them to
/// `unnest($1::text[], $2::<key>[], $3::uuid[], $4::text[])`.
pub struct EventColumns<'a, K> {
    /// Each item's tenant.
    pub tenants: Vec<&'a str>,
    /// Each item's key.
    pub keys: Vec<K>,
    /// A new event id for each item.
    pub event_ids: Vec<Uuid>,
    /// Each item's trace context.
    pub traceparents: Vec<Option<&'a str>>,
}

impl<'a, K: Clone> EventColumns<'a, K> {
    /// The columns of `items`.
    pub fn of(items: &[&'a SetItem<K>]) -> EventColumns<'a, K> {
        EventColumns {
            tenants: items.iter().map(|i| i.tenant.as_str()).collect(),
            keys: items.iter().map(|i| i.key.clone()).collect(),
            event_ids: items.iter().map(|_| Uuid::now_v7()).collect(),
            traceparents: items.iter().map(|i| i.traceparent.as_deref()).collect(),
        }
    }
}

/// A set statement's query, as [`fetch_per_item`] hands it over to bind the statement's own
/// parameters.
pub type SetQuery<'q, O> = QueryAs<'q, Postgres, O, PgArguments>;

/// Runs the set statement `sql` over `items` (each `(tenant, key)` once, writing one event each)
/// and answers its rows, one per item in the items' order: binds the items' [`EventColumns`] as
/// `$1` to `$4` and `event_type` as `$5`, then `bind` binds the statement's own parameters from
/// `$6` on. A statement that answers another number of rows than it was given items fails
/// (`sqlx::Error::Decode`): no row could be matched to its item then.
pub async fn fetch_per_item<'q, K, O>(
    conn: &mut PgConnection,
    sql: &'static str,
    items: &[&'q SetItem<K>],
    event_type: &'q str,
    bind: impl FnOnce(SetQuery<'q, O>) -> SetQuery<'q, O>,
) -> Result<Vec<O>, sqlx::Error>
where
    K: Clone,
    Vec<K>: sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + 'q,
    O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let columns = EventColumns::of(items);
    let query = sqlx::query_as(sql)
        .bind(columns.tenants)
        .bind(columns.keys)
        .bind(columns.event_ids)
        .bind(columns.traceparents)
        .bind(event_type);
    let rows = bind(query).fetch_all(conn).await?;
    if rows.len() != items.len() {
        return Err(sqlx::Error::Decode(
            format!(
                "a set statement of {} items answered {} rows",
                items.len(),
                rows.len()
            )
            .into(),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tenant: &str, key: u32) -> SetItem<u32> {
        SetItem {
            tenant: TenantId::parse(tenant).expect("tenant"),
            key,
            traceparent: None,
        }
    }

    #[test]
    fn each_tenant_and_key_once_and_every_item_its_slot() {
        let items = [
            item("acme", 1),
            item("globex", 1),
            item("acme", 1),
            item("acme", 2),
        ];
        let (unique, slots) = first_of_each(&items);
        let unique: Vec<(&str, u32)> = unique.iter().map(|i| (i.tenant.as_str(), i.key)).collect();
        assert_eq!(unique, [("acme", 1), ("globex", 1), ("acme", 2)]);
        assert_eq!(slots, [(0, true), (1, true), (0, false), (2, true)]);
    }

    #[test]
    fn columns_follow_the_items_with_a_new_event_id_each() {
        let items = [item("acme", 1), item("globex", 2)];
        let refs: Vec<&SetItem<u32>> = items.iter().collect();
        let columns = EventColumns::of(&refs);
        assert_eq!(columns.tenants, ["acme", "globex"]);
        assert_eq!(columns.keys, [1, 2]);
        assert_eq!(columns.event_ids.len(), 2);
        assert_ne!(columns.event_ids[0], columns.event_ids[1]);
        assert_eq!(columns.traceparents, [None, None]);
    }
}
