//! Harness for the end-to-end tests: every test runs the real `fulcrum`
//! binary as a child process on loopback, with a temporary data directory
//! and free ports.
//!
//! * [`Node::start`] / [`Node::builder`]: spawn `fulcrum server` and wait
//!   until it answers PING (20 s deadline); the child is killed on drop.
//! * [`Node::kill9`] (SIGKILL), [`Node::terminate`] (SIGTERM),
//!   [`Node::restart`] (same data directory), [`Node::is_alive`].
//! * [`http_get`]: a raw HTTP/1.1 GET over a tokio `TcpStream`.
//! * [`run`]: run the binary with arguments to completion (CLI tests), with
//!   a deadline.
//! * Frame helpers for concise assertions.
//! * [`cluster`]: several nodes joined into one cluster, and polling their
//!   `/status` until membership converges.
//!
//! Each test file uses a subset of this module.
#![allow(dead_code)]

pub mod cluster;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fulcrum_client::{Client, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fulcrum");

/// How long a node may take to answer its first PING.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a node may take to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Picks `N` distinct free loopback ports (bind port 0, read it, drop).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    let mut ports = [0u16; N];
    for (slot, l) in ports.iter_mut().zip(&listeners) {
        *slot = l
            .local_addr()
            .expect("local addr of a bound listener")
            .port();
    }
    ports
}

/// A loopback address on `port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Output of a child process, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn spawn_reader(mut source: impl Read + Send + 'static) -> Captured {
        let captured = Captured::default();
        let sink = captured.0.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match source.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });
        captured
    }

    /// Everything captured so far, as text with ANSI colour codes removed.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        strip_ansi(&String::from_utf8_lossy(&bytes))
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `Command` for the binary with a clean `FULCRUM_*` environment (the
/// test runner's environment must not leak into the node's configuration).
pub fn fulcrum_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FULCRUM_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Runs the binary with `args` and `envs` to completion; kills it and
/// panics if it runs longer than `timeout` (a server that should have
/// refused to start, say).
pub fn run(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Run {
    let mut cmd = fulcrum_command();
    cmd.args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the fulcrum binary");
    let stdout = Captured::spawn_reader(child.stdout.take().expect("piped stdout"));
    let stderr = Captured::spawn_reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`fulcrum {}` still running after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                stdout.text(),
                stderr.text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close when the child exits; give the readers a moment to
    // drain them.
    let drained = Instant::now() + Duration::from_secs(5);
    let (mut out, mut err) = (stdout.text(), stderr.text());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let (o, e) = (stdout.text(), stderr.text());
        if (o.len() == out.len() && e.len() == err.len()) || Instant::now() > drained {
            break;
        }
        out = o;
        err = e;
    }
    Run {
        status,
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

/// How to start a node.
#[derive(Clone, Default)]
pub struct NodeBuilder {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl NodeBuilder {
    /// An extra `fulcrum server` argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Extra `fulcrum server` arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the node.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Use this data directory instead of a fresh temporary one.
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Spawns the node and waits until it answers PING.
    pub async fn start(self) -> Node {
        let (tmp, data_dir) = match self.data_dir {
            Some(d) => (None, d),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("fulcrum-e2e-")
                    .tempdir()
                    .expect("create a temporary data directory");
                let path = tmp.path().to_path_buf();
                (Some(tmp), path)
            }
        };
        let mut node = Node {
            child: None,
            tmp,
            data_dir,
            resp: loopback(0),
            http: loopback(0),
            peer: loopback(0),
            args: self.args,
            envs: self.envs,
            stdout: Captured::default(),
            stderr: Captured::default(),
            earlier_logs: String::new(),
        };
        node.spawn_ready().await;
        node
    }
}

/// A running (or stopped) `fulcrum server` child process.
pub struct Node {
    child: Option<Child>,
    /// Owns the temporary data directory (removed on drop), if we made it.
    tmp: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    pub resp: SocketAddr,
    pub http: SocketAddr,
    pub peer: SocketAddr,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    stdout: Captured,
    stderr: Captured,
    /// stderr of earlier runs of this node (before restarts).
    earlier_logs: String,
}

impl Node {
    /// A node with default flags on a fresh temporary data directory.
    pub async fn start() -> Node {
        Node::builder().start().await
    }

    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// The child's process id (panics if stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }

    /// Spawns `fulcrum server` and waits for PING: on the ports of the
    /// previous run if there was one (a restart keeps its addresses), else
    /// on fresh free ports. Retries with other ports if one was taken in
    /// the meantime.
    async fn spawn_ready(&mut self) {
        assert!(self.child.is_none(), "node is already running");
        let mut last_failure = String::new();
        for attempt in 0..5 {
            let reuse = attempt == 0 && self.resp.port() != 0;
            if !reuse {
                let [resp, http, peer] = free_ports::<3>();
                self.resp = loopback(resp);
                self.http = loopback(http);
                self.peer = loopback(peer);
            }
            let mut cmd = fulcrum_command();
            cmd.arg("server")
                .arg("--data-dir")
                .arg(&self.data_dir)
                .arg("--resp-addr")
                .arg(self.resp.to_string())
                .arg("--http-addr")
                .arg(self.http.to_string())
                .arg("--peer-addr")
                .arg(self.peer.to_string())
                .args(&self.args)
                .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .envs(
                    std::env::var("E2E_NODE_LOG")
                        .ok()
                        .map(|v| ("FULCRUM_LOG".to_string(), v)),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn fulcrum server");
            self.stdout = Captured::spawn_reader(child.stdout.take().expect("piped stdout"));
            self.stderr = Captured::spawn_reader(child.stderr.take().expect("piped stderr"));
            self.child = Some(child);
            match self.wait_ready().await {
                Ok(()) => return,
                Err(failure) => {
                    self.earlier_logs.push_str(&self.stderr.text());
                    self.child = None;
                    if !failure.contains("cannot listen") {
                        panic!("node failed to start: {failure}");
                    }
                    last_failure = failure;
                }
            }
        }
        panic!("node failed to start (ports kept being taken): {last_failure}");
    }

    /// Polls PING until it answers, the child exits, or the deadline.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("node is running");
            if let Some(status) = child.try_wait().expect("try_wait on the node") {
                // Let the reader thread drain the pipe.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!(
                    "exited with {status} before answering PING\nstderr:\n{}",
                    self.stderr.text()
                ));
            }
            if let Ok(Ok(mut c)) =
                tokio::time::timeout(Duration::from_secs(1), Client::connect(self.resp)).await
            {
                c.set_timeout(Some(Duration::from_secs(2)));
                if c.ping().await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "node did not answer PING within {READY_TIMEOUT:?}\nstderr:\n{}",
                    self.stderr.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A new client connection to the node's RESP port.
    pub async fn client(&self) -> Client {
        Client::connect(self.resp)
            .await
            .expect("connect to the node's RESP port")
    }

    /// Whether the child process is still running.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().expect("try_wait on the node").is_none(),
        }
    }

    /// `kill -9`: SIGKILL, then reap the process.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("node is running");
        child.kill().expect("SIGKILL the node");
        child.wait().expect("reap the killed node");
        self.earlier_logs.push_str(&self.stderr.text());
    }

    /// `kill -TERM` and wait for a clean exit (panics after
    /// [`EXIT_TIMEOUT`]). Returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", pid.as_str()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let mut child = self.child.take().expect("node is running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait on the node") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                self.earlier_logs.push_str(&self.stderr.text());
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node did not exit within {EXIT_TIMEOUT:?} of SIGTERM\nstderr:\n{}",
                    self.stderr.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the node again on the same data directory, flags and ports
    /// (fresh ports only if those are taken) and waits for PING. The node
    /// must be stopped.
    pub async fn restart(&mut self) {
        self.spawn_ready().await;
    }

    /// stderr of every run of this node so far (logs, errors).
    pub fn stderr_text(&self) -> String {
        let mut s = self.earlier_logs.clone();
        if self.child.is_some() {
            s.push_str(&self.stderr.text());
        }
        s
    }

    /// stdout of the current run.
    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    /// GET `path` on the node's HTTP port.
    pub async fn http_get(&self, path: &str) -> HttpResponse {
        http_get(self.http, path).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let logs = self.stderr_text();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(dir) = std::env::var("E2E_LOG_DIR") {
            let name = format!("{}/node-{}.log", dir, self.peer.port());
            let _ = std::fs::write(name, &logs);
        }
        if std::thread::panicking() {
            let tail: String = {
                let start = logs.len().saturating_sub(3000);
                let start = (start..logs.len())
                    .find(|&i| logs.is_char_boundary(i))
                    .unwrap_or(logs.len());
                logs[start..].to_string()
            };
            eprintln!("---- node stderr (tail) ----\n{tail}\n---- end ----");
        }
        // `tmp` is dropped after this, removing the data directory.
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// A header's value (name compared ignoring case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 GET over a fresh TCP connection (`Connection:
/// close`, reads to EOF; understands chunked bodies). Panics on transport
/// errors or after 10 s.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let exchange = async {
        let mut s = TcpStream::connect(addr)
            .await
            .expect("connect to HTTP port");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .expect("send HTTP request");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read HTTP response");
        buf
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("HTTP GET timed out");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response has a header/body separator");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("HTTP status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("HTTP status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let size = usize::from_str_radix(&size_text, 16).expect("chunk size");
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

// ---------------------------------------------------------------------
// Raw RESP over TCP (exact bytes, for RESP3 shapes and protocol errors).
// ---------------------------------------------------------------------

/// A raw TCP connection to a RESP port.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect raw");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("raw send");
    }

    /// Reads until the bytes received (since the last read) contain
    /// `needle`; returns and consumes them. Panics after 10 s or on EOF.
    pub async fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self.buf.windows(needle.len()).position(|w| w == needle) {
                let rest = self.buf.split_off(p + needle.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(left, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {:?}; got {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(&self.buf)
                    )
                })
                .expect("raw read");
            assert!(
                n > 0,
                "connection closed while waiting for {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads exactly `n` bytes.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 16 * 1024];
            let got = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("raw read timed out")
                .expect("raw read");
            assert!(got > 0, "connection closed; got {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..got]);
        }
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }
}

/// Whether the server closed `client`'s connection: the next read ends
/// with EOF or a reset (not a timeout, not another reply).
pub async fn is_closed(client: &mut Client) -> bool {
    client.set_timeout(Some(Duration::from_secs(5)));
    match client.read_frame().await {
        Err(fulcrum_client::ClientError::Closed) | Err(fulcrum_client::ClientError::Io { .. }) => {
            true
        }
        Err(e) => panic!("expected the connection to be closed, got {e}"),
        Ok(f) => panic!("expected the connection to be closed, got reply {f:?}"),
    }
}

// ---------------------------------------------------------------------
// Frame helpers.
// ---------------------------------------------------------------------

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn simple(s: &str) -> Frame {
    Frame::Simple(s.to_string())
}

pub fn ok() -> Frame {
    simple("OK")
}

pub fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

/// Sends one command; panics on transport errors (error replies are
/// frames).
pub async fn cmd(c: &mut Client, args: &[&str]) -> Frame {
    c.cmd(args)
        .await
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// GET's value, `None` for nil; panics on any other reply.
pub async fn get(c: &mut Client, key: &str) -> Option<String> {
    match cmd(c, &["GET", key]).await {
        Frame::Null => None,
        Frame::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        other => panic!("GET {key}: unexpected reply {other:?}"),
    }
}

/// The text of an error reply; panics on any other frame.
pub fn err_text(f: &Frame) -> &str {
    match f {
        Frame::Error(e) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// Asserts `f` is an error reply starting with `prefix`.
#[track_caller]
pub fn assert_err(f: &Frame, prefix: &str) {
    let text = err_text(f);
    assert!(
        text.starts_with(prefix),
        "error {text:?} does not start with {prefix:?}"
    );
}

/// The text of a bulk, simple or verbatim string; panics otherwise.
pub fn text(f: &Frame) -> String {
    match f.as_bytes() {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => panic!("expected a string reply, got {f:?}"),
    }
}

/// The integer of an integer reply; panics otherwise.
pub fn as_int(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("expected an integer reply, got {other:?}"),
    }
}

/// The elements of an array (or set) reply; panics otherwise.
pub fn items(f: &Frame) -> &[Frame] {
    match f {
        Frame::Array(v) | Frame::Set(v) => v,
        other => panic!("expected an array reply, got {other:?}"),
    }
}

/// A map reply as (key text, value) pairs: a RESP3 map or its RESP2 form,
/// a flat array of key, value, ...
pub fn pairs(f: &Frame) -> Vec<(String, Frame)> {
    match f {
        Frame::Map(p) => p.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Frame::Array(flat) => {
            assert!(flat.len() % 2 == 0, "odd-length map array {flat:?}");
            flat.chunks(2)
                .map(|p| (text(&p[0]), p[1].clone()))
                .collect()
        }
        other => panic!("expected a map reply, got {other:?}"),
    }
}

/// A field of a map reply; panics if absent.
pub fn field(f: &Frame, name: &str) -> Frame {
    pairs(f)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name:?} in {f:?}"))
}

/// `name:value` from an INFO text.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}
