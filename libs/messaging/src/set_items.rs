//! The items of a set-based batch (a consumer's `consume_many`): each event's tenant, the key of
//! the row it acts on (an order id, say) and the trace context to store with what it writes, and
//! the plumbing every set-based statement needs around them: each `(tenant, key)` once, and the
//! columns to bind beside `unnest` for one new event per item, and the statement run with them
//! ([`fetch_per_item`] of a [`SetTransition`]).

use std::collections::HashMap;
use std::hash::Hash;

use longship_tenant::TenantId;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, TypeInfo};
use uuid::Uuid;

use crate::Delivered;
use crate::outbox::OUTBOX_INSERT;

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

/// A set statement that moves the rows of many items from one status to another, in one
/// statement: it locks the row of each item (the row of `table` whose `key_column` is the item's
/// key, of the item's tenant; in `(tenant, key)` order), runs the service's `effects` on them,
/// moves those in status `from` to status `to` and writes an event of `event_type` for each of
/// those (with the item's event id and trace context), and answers one row per item.
/// [`fetch_per_item`] runs it; this type writes the statement ([`SetTransition::sql`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetTransition {
    /// The event written for each row moved (`$5`).
    pub event_type: &'static str,
    /// The status a row moves from (`$6`).
    pub from: &'static str,
    /// The status it moves to (`$7`).
    pub to: &'static str,
    /// The table of the rows (with `tenant_id`, `status` and `updated_at` columns).
    pub table: &'static str,
    /// The column that holds an item's key (unique per tenant).
    pub key_column: &'static str,
    /// What `effects`, `payload` and `answer` read of a row, as columns of `t` (`t.lines`).
    pub columns: &'static str,
    /// The statement's own work, as CTEs (`a AS (...), b AS (...)`) over `found` (the locked rows:
    /// `tenant_id`, `key`, `status` and `columns`; the rows to move are those `WHERE status = $6`).
    pub effects: &'static str,
    /// The event's payload: a `jsonb` expression over `found`.
    pub payload: &'static str,
    /// What the statement answers for each item: columns of `found` (all null where an item has
    /// no row).
    pub answer: &'static str,
}

impl SetTransition {
    /// The statement: the items (`$1` to `$4`: tenants, keys, event ids, trace contexts, bound as
    /// [`EventColumns`]) as `item`, their rows locked as `found`, the effects, the move and the
    /// events, and the answer in the items' order.
    pub fn sql(&self, key_type: &str) -> String {
        let SetTransition {
            table,
            key_column,
            columns,
            effects,
            payload,
            answer,
            ..
        } = self;
        format!(
            "WITH item AS (
                 SELECT * FROM unnest($1::text[], $2::{key_type}, $3::uuid[], $4::text[])
                     WITH ORDINALITY AS u(tenant_id, key, event_id, traceparent, n)
             ), found AS MATERIALIZED (
                 SELECT t.tenant_id, t.{key_column} AS key, t.status, {columns}
                 FROM {table} t JOIN item ON t.tenant_id = item.tenant_id AND t.{key_column} = item.key
                 ORDER BY t.tenant_id COLLATE \"C\", t.{key_column}
                 FOR UPDATE OF t
             ), {effects}, transition AS (
                 UPDATE {table} t SET status = $7, updated_at = now()
                 FROM found
                 WHERE found.status = $6 AND t.tenant_id = found.tenant_id AND t.{key_column} = found.key
             ), event AS (
                 {OUTBOX_INSERT}
                 SELECT item.event_id, found.tenant_id, $5, 1, {payload}, item.traceparent
                 FROM found JOIN item ON item.tenant_id = found.tenant_id AND item.key = found.key
                 WHERE found.status = $6
             )
             SELECT {answer}
             FROM item LEFT JOIN found ON found.tenant_id = item.tenant_id AND found.key = item.key
             ORDER BY item.n"
        )
    }
}

/// Runs `transition` over `items` and answers, for every item in order, the row the statement
/// answered for its `(tenant, key)` and whether the item is the first of that `(tenant, key)` (a
/// later one is a repeat: it gets the first one's row, as a repeated single call would find the
/// first one's work done). The statement runs over each `(tenant, key)` once ([`first_of_each`]):
/// their [`EventColumns`] are bound as `$1` to `$4` and read by the statement's `item` CTE, then
/// the event type and the two statuses follow as `$5` to `$7`. A statement that answers another
/// number of rows than it was given items fails (`sqlx::Error::Decode`): no row could be matched
/// to its item then.
pub async fn fetch_per_item<'q, K, O>(
    conn: &mut PgConnection,
    transition: &SetTransition,
    items: &'q [SetItem<K>],
) -> Result<Vec<(O, bool)>, sqlx::Error>
where
    K: Clone + Eq + Hash,
    Vec<K>: sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + 'q,
    O: for<'r> sqlx::FromRow<'r, PgRow> + Clone + Send + Unpin,
{
    let (unique, slots) = first_of_each(items);
    let columns = EventColumns::of(&unique);
    let key_type = <Vec<K> as sqlx::Type<Postgres>>::type_info();
    let sql = transition.sql(&key_type.name().to_lowercase());
    let rows: Vec<O> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(columns.tenants)
        .bind(columns.keys)
        .bind(columns.event_ids)
        .bind(columns.traceparents)
        .bind(transition.event_type)
        .bind(transition.from)
        .bind(transition.to)
        .fetch_all(conn)
        .await?;
    if rows.len() != unique.len() {
        return Err(sqlx::Error::Decode(
            format!(
                "a set statement of {} items answered {} rows",
                unique.len(),
                rows.len()
            )
            .into(),
        ));
    }
    Ok(slots
        .into_iter()
        .map(|(slot, is_first)| (rows[slot].clone(), is_first))
        .collect())
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
