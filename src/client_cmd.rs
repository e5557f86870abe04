//! Client subcommands: `get`, `set`, `del`, `scan`, `keyspace …`,
//! `cluster …`. Each opens one RESP connection to `--addr`.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand};
use fulcrum_client::Client;
use fulcrum_proto::Frame;

#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Node to talk to (its RESP address).
    #[arg(long, default_value = "127.0.0.1:7379", env = "FULCRUM_ADDR")]
    pub addr: String,
    /// Keyspace to USE first.
    #[arg(long, short = 'k')]
    pub keyspace: Option<String>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    conn: Conn,
    key: String,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    #[command(flatten)]
    conn: Conn,
    key: String,
    value: String,
    /// Expire after this many seconds.
    #[arg(long)]
    ex: Option<u64>,
}

#[derive(Args, Debug)]
pub struct DelArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(required = true)]
    keys: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    conn: Conn,
    /// Glob pattern (Redis MATCH syntax).
    #[arg(long = "match", default_value = "*")]
    pattern: String,
    /// Stop after this many keys.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

#[derive(Args, Debug)]
pub struct KeyspaceArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: KeyspaceAction,
}

#[derive(Subcommand, Debug)]
enum KeyspaceAction {
    /// Create a keyspace.
    Create {
        name: String,
        /// eventual or strong.
        #[arg(long, default_value = "eventual")]
        mode: String,
        #[arg(long)]
        replicas: Option<u32>,
        #[arg(long)]
        read: Option<String>,
        #[arg(long)]
        write: Option<String>,
        /// siblings or lww (eventual keyspaces).
        #[arg(long)]
        conflict: Option<String>,
    },
    /// List keyspaces.
    List,
    /// Show a keyspace's settings.
    Info { name: String },
    /// Drop a keyspace and its data.
    Drop { name: String },
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Node to ask for `status` (its HTTP address).
    #[arg(long, default_value = "127.0.0.1:7380")]
    http: String,
    /// Node to send `leave` / `remove` to (its RESP address).
    #[arg(long, default_value = "127.0.0.1:7379")]
    addr: String,
    #[command(subcommand)]
    action: ClusterAction,
}

#[derive(Subcommand, Debug)]
enum ClusterAction {
    /// Show members and keyspaces as this node sees them.
    Status,
    /// Exit 0 if the node's /health answers 200 (container health checks).
    Health,
    /// Move this node's data to the other members, then stop it (`--addr`
    /// names the node that leaves).
    Leave,
    /// Take a dead node out of the ring; the others re-replicate its data.
    Remove { node: String },
}

async fn connect(conn: &Conn) -> anyhow::Result<Client> {
    let mut c = Client::connect(&conn.addr)
        .await
        .with_context(|| format!("cannot connect to {}", conn.addr))?;
    if let Some(ks) = &conn.keyspace {
        expect_ok(c.cmd(&["USE", ks.as_str()]).await?)?;
    }
    Ok(c)
}

fn expect_ok(f: Frame) -> anyhow::Result<Frame> {
    match f {
        Frame::Error(e) => bail!("{e}"),
        other => Ok(other),
    }
}

pub async fn get(a: GetArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.conn).await?;
    let reply = expect_ok(c.cmd(&["GET", a.key.as_str()]).await?)?;
    println!("{}", render(&reply));
    Ok(())
}

pub async fn set(a: SetArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.conn).await?;
    let ex = a.ex.map(|s| s.to_string());
    let mut args = vec!["SET", a.key.as_str(), a.value.as_str()];
    if let Some(ex) = &ex {
        args.extend(["EX", ex.as_str()]);
    }
    println!("{}", render(&expect_ok(c.cmd(&args).await?)?));
    Ok(())
}

pub async fn del(a: DelArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.conn).await?;
    let mut args = vec!["DEL"];
    args.extend(a.keys.iter().map(String::as_str));
    println!("{}", render(&expect_ok(c.cmd(&args).await?)?));
    Ok(())
}

pub async fn scan(a: ScanArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.conn).await?;
    let mut cursor = "0".to_string();
    let mut shown = 0;
    loop {
        let reply = expect_ok(
            c.cmd(&[
                "SCAN",
                cursor.as_str(),
                "MATCH",
                a.pattern.as_str(),
                "COUNT",
                "500",
            ])
            .await?,
        )?;
        let Frame::Array(parts) = reply else {
            bail!("unexpected SCAN reply");
        };
        let (Some(Frame::Bulk(next)), Some(Frame::Array(keys))) = (parts.first(), parts.get(1))
        else {
            bail!("unexpected SCAN reply");
        };
        for k in keys {
            if shown == a.limit {
                return Ok(());
            }
            println!("{}", render_plain(k));
            shown += 1;
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            return Ok(());
        }
    }
}

pub async fn keyspace(a: KeyspaceArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.conn).await?;
    let mut args: Vec<String> = vec!["KEYSPACE".into()];
    match a.action {
        KeyspaceAction::Create {
            name,
            mode,
            replicas,
            read,
            write,
            conflict,
        } => {
            args.extend(["CREATE".into(), name, "MODE".into(), mode]);
            for (k, v) in [
                ("REPLICAS", replicas.map(|r| r.to_string())),
                ("READ", read),
                ("WRITE", write),
                ("CONFLICT", conflict),
            ] {
                if let Some(v) = v {
                    args.extend([k.to_string(), v]);
                }
            }
        }
        KeyspaceAction::List => args.push("LIST".into()),
        KeyspaceAction::Info { name } => args.extend(["INFO".into(), name]),
        KeyspaceAction::Drop { name } => args.extend(["DROP".into(), name]),
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    println!("{}", render(&expect_ok(c.cmd(&refs).await?)?));
    Ok(())
}

pub async fn cluster(a: ClusterArgs) -> anyhow::Result<()> {
    match a.action {
        ClusterAction::Status => {
            let body = http_get(&a.http, "/status").await?;
            let v: serde_json::Value = serde_json::from_str(&body).context("bad /status JSON")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        ClusterAction::Health => {
            let body = http_get(&a.http, "/health").await?;
            println!("{}", body.trim());
            Ok(())
        }
        ClusterAction::Leave | ClusterAction::Remove { .. } => {
            let mut c = Client::connect(&a.addr)
                .await
                .with_context(|| format!("cannot connect to {}", a.addr))?;
            let reply = match &a.action {
                ClusterAction::Remove { node } => c.cmd(&["CLUSTER", "REMOVE", node]).await?,
                _ => c.cmd(&["CLUSTER", "LEAVE"]).await?,
            };
            println!("{}", render(&expect_ok(reply)?));
            Ok(())
        }
    }
}

/// A minimal HTTP/1.1 GET over a fresh TCP connection (enough for the
/// node's own status endpoint; no TLS, no redirects).
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP reply from {addr}");
    };
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{addr}{path}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_string())
}

/// Renders a reply the way redis-cli does.
pub fn render(f: &Frame) -> String {
    let mut out = String::new();
    render_into(f, 0, &mut out);
    out
}

fn render_plain(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => render(other),
    }
}

fn quoted(b: &Bytes) -> String {
    let mut s = String::from("\"");
    for &c in b.iter() {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

fn render_into(f: &Frame, indent: usize, out: &mut String) {
    match f {
        Frame::Simple(s) => out.push_str(s),
        Frame::Error(e) => out.push_str(&format!("(error) {e}")),
        Frame::Integer(i) => out.push_str(&format!("(integer) {i}")),
        Frame::Bulk(b) => out.push_str(&quoted(b)),
        Frame::Null | Frame::NullArray => out.push_str("(nil)"),
        Frame::Double(d) => out.push_str(&format!("(double) {d}")),
        Frame::Boolean(b) => out.push_str(if *b { "(true)" } else { "(false)" }),
        Frame::Verbatim(_, b) => out.push_str(&String::from_utf8_lossy(b)),
        Frame::Array(items) | Frame::Set(items) => render_list(items.iter(), indent, out),
        Frame::Map(pairs) => {
            let flat: Vec<&Frame> = pairs.iter().flat_map(|(k, v)| [k, v]).collect();
            render_list(flat.into_iter(), indent, out)
        }
    }
}

fn render_list<'a>(
    items: impl ExactSizeIterator<Item = &'a Frame>,
    indent: usize,
    out: &mut String,
) {
    if items.len() == 0 {
        out.push_str("(empty array)");
        return;
    }
    let width = items.len().to_string().len();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
        }
        let label = format!("{:>width$}) ", i + 1);
        out.push_str(&label);
        render_into(item, indent + label.len(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_redis_cli() {
        assert_eq!(render(&Frame::Integer(3)), "(integer) 3");
        assert_eq!(render(&Frame::Null), "(nil)");
        assert_eq!(render(&Frame::Bulk(Bytes::from("a\"b"))), "\"a\\\"b\"");
        let arr = Frame::Array(vec![
            Frame::Bulk(Bytes::from("0")),
            Frame::Array(vec![Frame::Bulk(Bytes::from("k"))]),
        ]);
        assert_eq!(render(&arr), "1) \"0\"\n2) 1) \"k\"");
    }
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    /// Node to repair from (its RESP address).
    #[arg(long, default_value = "127.0.0.1:7379", env = "FULCRUM_ADDR")]
    addr: String,
    /// Only this eventual keyspace (default: all of them).
    #[arg(long)]
    keyspace: Option<String>,
}

/// `fulcrum repair`: a full anti-entropy pass on the node at `--addr`
/// (every partition it shares with each live peer), with a spinner while
/// it runs.
pub async fn repair(a: RepairArgs) -> anyhow::Result<()> {
    let conn = Conn {
        addr: a.addr.clone(),
        keyspace: None,
    };
    let mut c = connect(&conn).await?;
    let mut args = vec!["REPAIR".to_string()];
    args.extend(a.keyspace.clone());
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("anti-entropy pass on {}", a.addr));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    c.set_timeout(None);
    let reply = c.cmd(&args).await;
    bar.finish_and_clear();
    println!("{}", render(&expect_ok(reply?)?));
    Ok(())
}
