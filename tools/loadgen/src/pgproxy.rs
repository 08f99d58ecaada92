//! A Postgres wire-protocol proxy that counts, per database, the statements clients execute and
//! the round trips they wait for: where `pg_stat_statements` is not loaded (it needs
//! `shared_preload_libraries`, so a server restart), this is how statements per saga are counted.
//! Start the platform with `LONGSHIP_PG_URL` pointing at the proxy; pass `--census-file` to the
//! bench. The proxy declines TLS so it can read the messages: use it on loopback only.

use std::collections::BTreeMap;
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
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Counters {
    /// Statements: each Execute, and each statement of a simple query.
    statements: u64,
    /// Round trips: simple queries and Syncs (what a client waits for).
    round_trips: u64,
    /// Parse messages (statements prepared).
    parses: u64,
    /// Connections opened.
    connections: u64,
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
            if buf.len() < at + 1 + len {
                break;
            }
            match kind {
                b'Q' => {
                    delta.round_trips += 1;
                    let text = String::from_utf8_lossy(&buf[at + 5..at + 1 + len]);
                    delta.statements += text
                        .trim_end_matches('\0')
                        .split(';')
                        .filter(|s| !s.trim().is_empty())
                        .count() as u64;
                }
                b'E' => delta.statements += 1,
                b'S' => delta.round_trips += 1,
                b'P' => delta.parses += 1,
                _ => {}
            }
            at += 1 + len;
        }
        server_write.write_all(&buf[..at]).await?;
        buf.drain(..at);
        if let Ok(mut c) = counters.lock() {
            let e = c.entry(database.clone()).or_default();
            e.statements += delta.statements;
            e.round_trips += delta.round_trips;
            e.parses += delta.parses;
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
}
