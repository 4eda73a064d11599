//! A login session on a ship: a `session` channel of the ship's own SSH session (the last
//! hop of its chain, so jump hosts are crossed as for Docker), with a terminal when asked,
//! running a command or the user's shell. For `maestro ssh`.
//!
//! One task owns the channel and pumps both ways: what the caller sends ([`SessionInput`]) goes
//! to the ship, what the ship sends comes back as [`SessionOutput`], the exit status last. The
//! caller never holds the channel itself, so dropping a [`ShipSession`] ends the task, which
//! closes the channel: the remote command's streams are not left open behind us.

use std::sync::Arc;

use russh::ChannelMsg;
use tokio::sync::mpsc;

use super::error::{TransportError, TransportErrorKind};

/// What to run, and the terminal to give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRequest {
    /// A command for the user's shell on the ship; `None`: the login shell itself.
    pub command: Option<String>,
    /// A pseudo-terminal on the ship, as OpenSSH's `-t` asks for one.
    pub pty: Option<PtyRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyRequest {
    /// `TERM` on the ship (ours, else `xterm`).
    pub term: String,
    pub rows: u16,
    pub cols: u16,
}

/// What the caller sends to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionInput {
    Data(Vec<u8>),
    /// End of our standard input.
    Eof,
    /// The window changed size.
    Resize {
        rows: u16,
        cols: u16,
    },
}

/// What the ship sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command ended with this status; nothing follows.
    Exit(u32),
    /// The command was killed by this signal (its name, as `TERM`); nothing follows.
    Signal(String),
    /// The ship refused the terminal, the command or the shell; nothing follows.
    Refused,
}

/// A running session. The output ends (`None`) after `Exit` or `Signal`, or when the channel
/// closed without either (the connection was lost).
#[derive(Debug)]
pub struct ShipSession {
    pub input: mpsc::Sender<SessionInput>,
    pub output: mpsc::Receiver<SessionOutput>,
}

/// Opens the session on `handle`'s channel and starts the pump.
pub(crate) async fn start(
    channel: russh::Channel<russh::client::Msg>,
    request: &SessionRequest,
    ship: &str,
    hop: &str,
) -> Result<ShipSession, TransportError> {
    let failed = |what: &str, source: russh::Error| {
        TransportErrorKind::Ssh {
            hop: format!("{hop} ({what})"),
            source: Arc::new(source),
        }
        .for_ship(ship)
    };
    if let Some(pty) = &request.pty {
        channel
            .request_pty(
                false,
                &pty.term,
                u32::from(pty.cols),
                u32::from(pty.rows),
                0,
                0,
                &[],
            )
            .await
            .map_err(|e| failed("terminal request", e))?;
    }
    match &request.command {
        Some(command) => channel
            .exec(true, command.as_bytes())
            .await
            .map_err(|e| failed("command", e))?,
        None => channel
            .request_shell(true)
            .await
            .map_err(|e| failed("shell", e))?,
    }
    let (input_tx, input_rx) = mpsc::channel::<SessionInput>(64);
    let (output_tx, output_rx) = mpsc::channel::<SessionOutput>(64);
    let (read, write) = channel.split();
    tokio::spawn(pump(read, write, input_rx, output_tx));
    Ok(ShipSession {
        input: input_tx,
        output: output_rx,
    })
}

/// Moves the session's bytes both ways until the channel closes: the remote output (and its
/// end: exit status, signal, or refusal) to `output_tx`, the operator's input and window
/// changes to the channel.
async fn pump(
    mut read: russh::ChannelReadHalf,
    write: russh::ChannelWriteHalf<russh::client::Msg>,
    mut input_rx: mpsc::Receiver<SessionInput>,
    output_tx: mpsc::Sender<SessionOutput>,
) {
    let mut input_open = true;
    // OpenSSH may send the exit status before the last of the output: it is passed on
    // once the channel closes.
    let mut ended: Option<SessionOutput> = None;
    loop {
        tokio::select! {
            message = read.wait() => {
                let out = match message {
                    Some(ChannelMsg::Data { data }) => SessionOutput::Stdout(data.to_vec()),
                    Some(ChannelMsg::ExtendedData { data, .. }) => {
                        SessionOutput::Stderr(data.to_vec())
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        ended = Some(SessionOutput::Exit(exit_status));
                        continue;
                    }
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                        ended = Some(SessionOutput::Signal(signal_text(&signal_name)));
                        continue;
                    }
                    // The server refused the terminal, the command or the shell.
                    Some(ChannelMsg::Failure) => {
                        ended = Some(SessionOutput::Refused);
                        break;
                    }
                    Some(ChannelMsg::Close) | None => break,
                    Some(_) => continue,
                };
                if output_tx.send(out).await.is_err() {
                    break;
                }
            }
            input = input_rx.recv(), if input_open => {
                let sent = match input {
                    Some(SessionInput::Data(bytes)) => write.data_bytes(bytes).await,
                    Some(SessionInput::Resize { rows, cols }) => {
                        write
                            .window_change(u32::from(cols), u32::from(rows), 0, 0)
                            .await
                    }
                    Some(SessionInput::Eof) => write.eof().await,
                    None => {
                        input_open = false;
                        Ok(())
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(last) = ended {
        let _ = output_tx.send(last).await;
    }
    let _ = write.close().await;
}

fn signal_text(signal: &russh::Sig) -> String {
    let text = format!("{signal:?}");
    match text.strip_prefix("Custom(") {
        Some(rest) => rest.trim_end_matches(')').trim_matches('"').to_string(),
        None => text,
    }
}
