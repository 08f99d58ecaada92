//! A Postgres wire-protocol proxy that counts, per database, the statements clients execute and
//! the round trips they wait for: where `pg_stat_statements` is not loaded (it needs
//! `shared_preload_libraries`, so a server restart), this is how statements per saga are counted.
//! Start the platform with `LONGSHIP_PG_URL` pointing at the proxy; pass `--census-file` to the
//! bench. It also counts each statement by its text (what a prepared statement was parsed as), and
//! the round trips that carried no statement (a bare Sync: sqlx's ping when a connection returns to
//! its pool). The proxy declines TLS so it can read the messages: use it on loopback only.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::ProxyOptions;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// Counters of one database.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Counters {
    /// Statements: each Execute, and each statement of a simple query.
    statements: u64,
    /// Round trips: simple queries and Syncs (what a client waits for).
    round_trips: u64,
    /// Round trips without a statement: a Sync with no Execute since the last round trip.
    pings: u64,
    /// Parse messages (statements prepared).
    parses: u64,
    /// Connections opened.
    connections: u64,
    /// Statements by their text (whitespace collapsed, cut at [`TEXT_MAX`] characters).
    by_statement: BTreeMap<String, u64>,
}

impl Counters {
    fn add(&mut self, delta: Counters) {
        self.statements += delta.statements;
        self.round_trips += delta.round_trips;
        self.pings += delta.pings;
        self.parses += delta.parses;
        for (text, n) in delta.by_statement {
            *self.by_statement.entry(text).or_default() += n;
        }
    }
}

/// Statement texts longer than this are cut (enough to tell the platform's statements apart).
const TEXT_MAX: usize = 160;

/// A statement's text as counted: whitespace collapsed, string literals (which a simple query
/// carries instead of parameters: a tenant, an order id) replaced by `'?'`, cut at [`TEXT_MAX`]
/// characters.
fn statement_key(text: &str) -> String {
    let mut literals_out = String::with_capacity(text.len());
    let mut in_literal = false;
    for c in text.chars() {
        match (in_literal, c) {
            (false, '\'') => {
                in_literal = true;
                literals_out.push_str("'?'");
            }
            // a doubled quote inside a literal closes and reopens it: nothing is pushed either way
            (true, '\'') => in_literal = false,
            (true, _) => {}
            (false, c) => literals_out.push(c),
        }
    }
    let collapsed = literals_out
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match collapsed.char_indices().nth(TEXT_MAX) {
        Some((at, _)) => format!("{}...", &collapsed[..at]),
        None => collapsed,
    }
}

/// The NUL-terminated string at the start of `bytes`, and what follows it.
fn cstr(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let rest = bytes.get(end + 1..).unwrap_or_default();
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), rest)
}

/// What one client connection has prepared and bound, so that an Execute can be counted by text.
#[derive(Debug, Default)]
struct Session {
    /// Prepared statement name ("" for the unnamed one) -> text.
    prepared: HashMap<String, String>,
    /// Portal name -> the text of the statement bound to it.
    portals: HashMap<String, String>,
    /// Executes since the last round trip (none at a Sync: a ping).
    executes: u32,
}

impl Session {
    /// Counts one frontend message (`kind`, `body` without the length) into `delta`.
    fn count(&mut self, kind: u8, body: &[u8], delta: &mut Counters) {
        match kind {
            b'Q' => {
                delta.round_trips += 1;
                self.executes = 0;
                let (text, _) = cstr(body);
                for statement in text.split(';').filter(|s| !s.trim().is_empty()) {
                    delta.statements += 1;
                    *delta
                        .by_statement
                        .entry(statement_key(statement))
                        .or_default() += 1;
                }
            }
            b'P' => {
                delta.parses += 1;
                let (name, rest) = cstr(body);
                let (text, _) = cstr(rest);
                self.prepared.insert(name, statement_key(&text));
            }
            b'B' => {
                let (portal, rest) = cstr(body);
                let (statement, _) = cstr(rest);
                let text = self.prepared.get(&statement).cloned().unwrap_or_else(|| {
                    format!("(statement {statement:?} prepared before the count)")
                });
                self.portals.insert(portal, text);
            }
            b'E' => {
                delta.statements += 1;
                self.executes += 1;
                let (portal, _) = cstr(body);
                let text = self.portals.get(&portal).cloned().unwrap_or_default();
                *delta.by_statement.entry(text).or_default() += 1;
            }
            b'S' => {
                delta.round_trips += 1;
                if self.executes == 0 {
                    delta.pings += 1;
                }
                self.executes = 0;
            }
            _ => {}
        }
    }
}

type Shared = Arc<Mutex<BTreeMap<String, Counters>>>;

/// Runs until killed.
pub async fn run(options: ProxyOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let counters: Shared = Arc::new(Mutex::new(BTreeMap::new()));
    tokio::spawn(write_stats(
        Arc::clone(&counters),
        options.stats_file.clone(),
    ));
    eprintln!(
        "pg-proxy: {} -> {}, counters in {}",
        options.listen,
        options.upstream,
        options.stats_file.display()
    );
    loop {
        let (client, _) = listener.accept().await?;
        let (counters, upstream) = (Arc::clone(&counters), options.upstream.clone());
        tokio::spawn(async move {
            let _ = serve(client, &upstream, counters).await;
        });
    }
}

async fn write_stats(counters: Shared, file: PathBuf) {
    let tmp = file.with_extension("tmp");
    loop {
        let snapshot = counters.lock().map(|c| c.clone()).unwrap_or_default();
        let json = serde_json::json!({ "databases": snapshot });
        if std::fs::write(&tmp, json.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_startup(client: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    loop {
        let len = client.read_i32().await?;
        anyhow::ensure!((8..=10_000).contains(&len), "bad startup length");
        let mut body = vec![0u8; len as usize - 4];
        client.read_exact(&mut body).await?;
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            // no encryption: the proxy has to read the messages
            client.write_all(b"N").await?;
            continue;
        }
        let mut whole = Vec::with_capacity(len as usize);
        whole.extend_from_slice(&len.to_be_bytes());
        whole.extend_from_slice(&body);
        return Ok(whole);
    }
}

fn database_of(startup: &[u8]) -> String {
    // after length and protocol: key\0value\0 ... \0
    let params: Vec<&[u8]> = startup
        .get(8..)
        .unwrap_or_default()
        .split(|b| *b == 0)
        .collect();
    let get = |key: &[u8]| {
        params
            .chunks(2)
            .find(|kv| kv.first() == Some(&key))
            .and_then(|kv| kv.get(1))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    get(b"database")
        .or_else(|| get(b"user"))
        .unwrap_or_default()
}

async fn serve(mut client: TcpStream, upstream: &str, counters: Shared) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let startup = read_startup(&mut client).await?;
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    server.write_all(&startup).await?;
    let code = i32::from_be_bytes([startup[4], startup[5], startup[6], startup[7]]);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    if code == CANCEL_REQUEST {
        return Ok(());
    }
    let database = database_of(&startup);
    if let Ok(mut c) = counters.lock() {
        c.entry(database.clone()).or_default().connections += 1;
    }
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut session = Session::default();
    loop {
        let n = client_read.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        // count every complete message; forward the bytes as they came
        let mut at = 0;
        let mut delta = Counters::default();
        while buf.len() >= at + 5 {
            let kind = buf[at];
            let len =
                u32::from_be_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
            if len < 4 || buf.len() < at + 1 + len {
                break;
            }
            session.count(kind, &buf[at + 5..at + 1 + len], &mut delta);
            at += 1 + len;
        }
        server_write.write_all(&buf[..at]).await?;
        buf.drain(..at);
        if let Ok(mut c) = counters.lock() {
            c.entry(database.clone()).or_default().add(delta);
        }
    }
    down.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_comes_from_the_startup_message() {
        let mut m = vec![0, 0, 0, 0, 0, 3, 0, 0];
        m.extend_from_slice(b"user\0postgres\0database\0orders_x\0options\0-c a=b\0\0");
        assert_eq!(database_of(&m), "orders_x");
        let mut only_user = vec![0, 0, 0, 0, 0, 3, 0, 0];
        only_user.extend_from_slice(b"user\0alice\0\0");
        assert_eq!(database_of(&only_user), "alice");
    }

    fn message(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn executes_are_counted_by_the_text_they_were_prepared_with_and_bare_syncs_are_pings() {
        let mut session = Session::default();
        let mut delta = Counters::default();
        let select = "SELECT 1\n   FROM  t WHERE id = $1";
        session.count(
            b'P',
            &message(&[b"s1\0", select.as_bytes(), b"\0\0\0"]),
            &mut delta,
        );
        for _ in 0..2 {
            session.count(b'B', &message(&[b"\0s1\0", &[0; 6]]), &mut delta);
            session.count(b'E', &message(&[b"\0", &[0; 4]]), &mut delta);
            session.count(b'S', &[], &mut delta);
        }
        session.count(b'S', &[], &mut delta); // a ping
        session.count(
            b'Q',
            b"BEGIN; SELECT set_config('a', 'b', true)\0",
            &mut delta,
        );
        assert_eq!(delta.statements, 4);
        assert_eq!(delta.round_trips, 4);
        assert_eq!(delta.pings, 1);
        assert_eq!(delta.parses, 1);
        assert_eq!(
            delta.by_statement.get("SELECT 1 FROM t WHERE id = $1"),
            Some(&2)
        );
        assert_eq!(delta.by_statement.get("BEGIN"), Some(&1));
        assert_eq!(
            delta.by_statement.get("SELECT set_config('?', '?', true)"),
            Some(&1)
        );
    }

    #[test]
    fn string_literals_do_not_split_a_statement_into_many() {
        assert_eq!(
            statement_key("SELECT set_config('app.tenant_id', 'it''s t-1', true)"),
            "SELECT set_config('?', '?''?', true)"
        );
        assert_eq!(
            statement_key("SELECT set_config('app.tenant_id', 't-2', true)"),
            statement_key("SELECT set_config('app.tenant_id', 't-3', true)")
        );
    }

    #[test]
    fn long_statements_are_cut_on_a_character_boundary() {
        let long = "é".repeat(TEXT_MAX + 10); // no quotes: nothing replaced
        let key = statement_key(&long);
        assert_eq!(key.chars().count(), TEXT_MAX + 3);
        assert!(key.ends_with("..."));
    }
}
