//! `maestro forward` against the real test bed: a local port carried to an httpd instance
//! on an inner ship (through the bastion), to a ship's own loopback port, and the bad inputs
//! refused before any ship is contacted.
//!
//! The forwarding tests use the second inner ship and ship2, which no other test of this
//! binary touches, so that counting their connections says something.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common;

use common::support::{self, Run};

/// How long any wait of these tests may take before it fails the test.
const LIMIT: Duration = Duration::from_secs(60);

struct Setup {
    bed: common::SharedBed,
    dir: tempfile::TempDir,
    file: PathBuf,
    /// The bed's name of the inner ship written as `inner` in the file.
    inner: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.bed.docker_cli(&self.inner, &["rm", "-f", "fwweb-1"]);
    }
}

const HTTPD: &str = "sh -c 'mkdir -p /www && echo hello-forward > /www/index.html && exec httpd -f -p 8080 -h /www'";

fn setup() -> Setup {
    let bed = common::TestBed::shared();
    let inner = bed
        .inner_ships()
        .get(1)
        .or(bed.inner_ships().first())
        .map(|s| s.name.clone())
        .expect("the bed has an inner ship");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fw.yaml");
    let text = format!(
        "name: fw\nships:\n{}{}services:\n  fwweb:\n    image: {}\n    ports: {{http: \"8080:28181\"}}\n    instances:\n      fwweb-1: {{ship: inner, command: \"{}\"}}\n",
        bed.ship_yaml("ship2", "ship2"),
        bed.ship_yaml(&inner, "inner"),
        bed.image,
        HTTPD.replace('"', "\\\""),
    );
    std::fs::write(&file, text).expect("write the file");
    Setup {
        bed,
        dir,
        file,
        inner,
    }
}

impl Setup {
    fn run(&self, args: &[&str]) -> Run {
        support::run_within(&mut self.command(args), LIMIT)
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = common::maestro(self.dir.path());
        cmd.arg("-f").arg(&self.file).args(args);
        cmd
    }

    /// `maestro forward ARGS`, once it says where it listens.
    fn forward(&self, args: &[&str]) -> Forwarding {
        let started = Instant::now();
        let mut child = self
            .command(&[&["forward"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run maestro forward");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(LIMIT);
        let first = match first {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let run = support::finish_within(child, LIMIT, started);
                panic!("forward printed no address:\n{run}");
            }
        };
        let local: SocketAddr = first
            .strip_prefix("forwarding ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Forwarding {
            child: Some(child),
            first,
            local,
            started,
        }
    }
}

struct Forwarding {
    child: Option<Child>,
    first: String,
    local: SocketAddr,
    started: Instant,
}

impl Forwarding {
    /// Ctrl-C, and what the process did.
    fn interrupt(mut self) -> Run {
        let child = self.child.take().expect("running");
        let _ = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        support::finish_within(child, LIMIT, self.started)
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Established TCP connections in namespace `netns` that match the `ss` filter `filter`.
fn established(netns: &str, filter: &str) -> usize {
    let out = support::in_netns(netns, &["ss", "-Htn", "state", "established", filter]);
    assert!(out.status.success(), "ss: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn read_all(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

#[test]
fn forward_serves_many_connections_at_once_to_an_instance_behind_the_bastion() {
    let s = setup();
    let started = s.run(&["start", "fwweb-1"]);
    assert_eq!(started.code, 0, "{started}");
    let netns = s.bed.ship(&s.inner).netns.clone();
    let bastion_before = s.bed.bastion_ssh_connections();
    let ssh_before = established(&netns, "( sport = :22 )");

    let forwarding = s.forward(&["fwweb-1", "http"]);
    assert!(
        forwarding.first.contains("-> fwweb-1 port http (")
            && forwarding.first.contains(":28181 on ship inner)"),
        "{}",
        forwarding.first
    );
    assert!(forwarding.local.ip().is_loopback(), "127.0.0.1 by default");

    // Five connections, each with half a request: the forward must hold all five channels
    // open at once for httpd to see five connections.
    let mut clients: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut client = TcpStream::connect(forwarding.local).expect("connect");
            client
                .write_all(b"GET /index.html HTTP/1.0\r\n")
                .expect("write");
            client
        })
        .collect();
    let to_httpd = "( dport = :28181 )";
    assert!(
        support::wait_for(LIMIT, || established(&netns, to_httpd) >= 5),
        "five channels open at once on the ship: {} seen",
        established(&netns, to_httpd)
    );
    for client in &mut clients {
        client.write_all(b"\r\n").expect("end the request");
    }
    for client in &mut clients {
        let answer = read_all(client);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("hello-forward\n"), "{answer}");
    }
    drop(clients);
    assert!(
        support::wait_for(LIMIT, || established(&netns, to_httpd) == 0),
        "each channel closes with its connection, while the forward goes on"
    );

    let run = forwarding.interrupt();
    assert_eq!(run.code, 0, "Ctrl-C is how a forward ends: {run}");
    assert!(run.stderr.is_empty(), "no connection failed: {run}");
    assert!(
        support::wait_for(LIMIT, || established(&netns, "( sport = :22 )")
            == ssh_before),
        "the SSH session to the inner ship is gone"
    );
    assert!(
        support::wait_for(LIMIT, || s.bed.bastion_ssh_connections() == bastion_before),
        "the session to the bastion is gone"
    );
}

#[test]
fn forward_reaches_a_port_of_the_ship_itself_on_its_loopback() {
    let s = setup();
    // dockerd also listens on 127.0.0.1 inside the ship, and only there.
    let port = s.bed.ship("ship2").docker_tcp_port.to_string();
    let forwarding = s.forward(&["ship2", &format!("{port}:0")]);
    assert!(
        forwarding.first.contains(&format!(
            "-> ship ship2 port {port} (127.0.0.1:{port} on the ship)"
        )),
        "{}",
        forwarding.first
    );
    let mut client = TcpStream::connect(forwarding.local).expect("connect");
    client
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .expect("write");
    let answer = read_all(&mut client);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.ends_with("OK"), "{answer}");
    let run = forwarding.interrupt();
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn forward_refuses_bad_input_before_contacting_a_ship() {
    let s = setup();
    let check = |args: &[&str], code: i32, wanted: &[&str]| {
        let run = s.run(&[&["forward"], args].concat());
        assert_eq!(run.code, code, "{args:?}: {run}");
        for text in wanted {
            assert!(run.stderr.contains(text), "{args:?}: no {text:?} in {run}");
        }
        assert!(run.stdout.is_empty(), "{run}");
    };
    check(
        &["fwweb-2", "http"],
        2,
        &[
            "error: no instance or ship named `fwweb-2`; did you mean `fwweb-1`?",
            "= help: forward takes an instance name",
        ],
    );
    check(
        &["fwweb-1", "htp"],
        2,
        &[
            "error: instance fwweb-1 has no port named `htp`; did you mean `http`?",
            "= help: its ports: http (8080/tcp); or give a port number",
        ],
    );
    check(
        &["ship2", "http"],
        2,
        &["error: `ship2` is a ship, and a ship's ports have no names"],
    );
    check(
        &["fwweb-1", "http:x"],
        2,
        &["LOCAL_PORT must be a number from 0 to 65535 (0: any free port), not `x`"],
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    check(
        &["fwweb-1", &format!("http:{port}")],
        2,
        &[
            &format!("error: cannot listen on 127.0.0.1:{port}: the address is in use"),
            "choose another local port (PORT:LOCAL_PORT), or leave LOCAL_PORT out",
        ],
    );
}
