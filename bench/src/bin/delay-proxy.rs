//! A userspace delaying TCP proxy: the kernel of the benchmark machine has no netem, so a
//! wide-area link is emulated here, in front of each ship's sshd.
//!
//! Every byte is held for the one-way delay in each direction, in order, without serialising
//! the link (bytes read 1 ms apart leave 1 ms apart), and a new connection reaches the target
//! only after 1.5 round trips, the moment a real server would see the TCP handshake complete
//! (client SYN, server SYN-ACK, client ACK). So a client pays for TCP's round trip as it would
//! over the real link, although its own `connect()` returns at once.
//!
//! ```text
//! delay-proxy serve --delay-ms 25 --map 127.0.100.1:22=10.1.2.11:22 [--map ...] [--echo ADDR]
//!                   [--trace FILE]      one line per chunk read: the profile of round trips
//! delay-proxy rtt ADDR [--samples 20]     median ping-pong time over one connection, in ms
//! ```
//! `--echo ADDR` listens on ADDR with the same delays in front of a built-in echo server, so
//! the round trip of the emulated link can be measured without any server's own work in it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where `--trace` writes one line per chunk: connection, ms since the proxy started,
/// direction (`>` client to server, `<` back), bytes. Direction changes are round trips.
static TRACE: std::sync::OnceLock<(Instant, std::sync::Mutex<std::fs::File>)> =
    std::sync::OnceLock::new();
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn trace(conn: u64, dir: char, bytes: usize) {
    if let Some((t0, file)) = TRACE.get() {
        use std::io::Write;
        if let Ok(mut f) = file.lock() {
            let _ = writeln!(
                f,
                "{conn} {:.3} {dir} {bytes}",
                t0.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
}

/// Data read at one instant, to be written at `due`; `None` is the end of the stream.
struct Chunk {
    due: Instant,
    bytes: Option<Vec<u8>>,
}

fn usage() -> ! {
    eprintln!(
        "usage: delay-proxy serve --delay-ms MS [--no-tcp-handshake] [--trace FILE] --map LISTEN=TARGET... [--echo LISTEN]\n       delay-proxy rtt ADDR [--samples N]"
    );
    std::process::exit(2)
}

fn parse_addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| {
        eprintln!("delay-proxy: bad address {s:?}: {e}");
        std::process::exit(2)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("delay-proxy: cannot start the runtime: {e}");
            std::process::exit(1)
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("serve") => runtime.block_on(serve(&args[1..])),
        Some("rtt") => runtime.block_on(rtt(&args[1..])),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("delay-proxy: {e}");
        std::process::exit(1)
    }
}

async fn serve(args: &[String]) -> Result<(), Error> {
    let mut delay = Duration::from_millis(25);
    let mut tcp_handshake = true;
    let mut maps = Vec::new();
    let mut echo = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--delay-ms" => {
                let ms: f64 = it.next().unwrap_or_else(|| usage()).parse()?;
                delay = Duration::from_secs_f64(ms / 1000.0);
            }
            "--no-tcp-handshake" => tcp_handshake = false,
            "--map" => {
                let m = it.next().unwrap_or_else(|| usage());
                let (l, t) = m.split_once('=').unwrap_or_else(|| usage());
                maps.push((parse_addr(l), parse_addr(t)));
            }
            "--echo" => echo = Some(parse_addr(it.next().unwrap_or_else(|| usage()))),
            "--trace" => {
                let path = it.next().unwrap_or_else(|| usage());
                let file = std::fs::File::create(path)?;
                let _ = TRACE.set((Instant::now(), std::sync::Mutex::new(file)));
            }
            _ => usage(),
        }
    }
    if let Some(listen) = echo {
        let server = TcpListener::bind("127.0.0.1:0").await?;
        let target = server.local_addr()?;
        tokio::spawn(echo_server(server));
        maps.push((listen, target));
    }
    if maps.is_empty() {
        usage()
    }
    let hold = if tcp_handshake {
        delay * 3
    } else {
        Duration::ZERO
    };
    let mut tasks = Vec::new();
    for (listen, target) in maps {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        tasks.push(tokio::spawn(accept_loop(listener, target, delay, hold)));
    }
    // Ready: the harness waits for this line before it uses the proxy.
    println!("ready");
    for t in tasks {
        t.await?;
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, delay: Duration, hold: Duration) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(async move {
                    if let Err(e) = relay(client, target, delay, hold).await {
                        eprintln!("delay-proxy: connection to {target}: {e}");
                    }
                });
            }
            Err(e) => {
                eprintln!("delay-proxy: accept: {e}");
                sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    delay: Duration,
    hold: Duration,
) -> Result<(), Error> {
    let accepted = Instant::now();
    let conn = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    trace(conn, '+', 0);
    client.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    // Reading from the client starts at once; what it sends before the emulated handshake
    // completes waits in the queue, as it would in the client's kernel.
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let reader_up = tokio::spawn(read_side(client_read, up_tx, delay, conn, '>'));
    sleep_until(accepted + hold).await;
    let server = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            reader_up.abort();
            return Err(e.into());
        }
    };
    server.set_nodelay(true)?;
    let (server_read, server_write) = server.into_split();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    let reader_down = tokio::spawn(read_side(server_read, down_tx, delay, conn, '<'));
    let writer_up = tokio::spawn(write_side(server_write, up_rx));
    let writer_down = tokio::spawn(write_side(client_write, down_rx));
    // A direction ends on its own (half close); the connection ends when both have.
    let (a, b) = tokio::join!(writer_up, writer_down);
    reader_up.abort();
    reader_down.abort();
    a??;
    b??;
    Ok(())
}

async fn read_side(
    mut from: OwnedReadHalf,
    queue: mpsc::UnboundedSender<Chunk>,
    delay: Duration,
    conn: u64,
    dir: char,
) -> Result<(), Error> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A reset is the end of this direction, like EOF; the writer closes the other side.
        let n = from.read(&mut buf).await.unwrap_or_default();
        let due = Instant::now() + delay;
        trace(conn, dir, n);
        let bytes = (n > 0).then(|| buf[..n].to_vec());
        let end = bytes.is_none();
        if queue.send(Chunk { due, bytes }).is_err() || end {
            return Ok(());
        }
    }
}

async fn write_side(
    mut to: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Chunk>,
) -> Result<(), Error> {
    while let Some(chunk) = queue.recv().await {
        sleep_until(chunk.due).await;
        match chunk.bytes {
            Some(b) => {
                if to.write_all(&b).await.is_err() {
                    // The peer is gone; stop quietly, the other direction will end too.
                    return Ok(());
                }
            }
            None => break,
        }
    }
    let _ = to.shutdown().await;
    Ok(())
}

async fn echo_server(listener: TcpListener) {
    while let Ok((mut s, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

/// Median time of a one-byte ping-pong over one established connection, in milliseconds.
async fn rtt(args: &[String]) -> Result<(), Error> {
    let addr = parse_addr(args.first().unwrap_or_else(|| usage()));
    let mut samples = 20usize;
    if args.get(1).map(String::as_str) == Some("--samples") {
        samples = args.get(2).unwrap_or_else(|| usage()).parse()?;
    }
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut times = Vec::with_capacity(samples);
    let mut byte = [0u8; 1];
    // The first exchange also waits for the emulated TCP handshake: not a sample.
    for i in 0..samples + 1 {
        let t0 = Instant::now();
        s.write_all(b"x").await?;
        s.read_exact(&mut byte).await?;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    println!("{:.3}", times[times.len() / 2]);
    Ok(())
}
