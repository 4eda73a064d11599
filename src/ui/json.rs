//! `--json`: the event stream itself, one object per line (see `orchestrate::engine::events` for the
//! schema), flushed per line so a consumer sees events as they happen.

use std::io::{self, Write};

use crate::orchestrate::engine::events::Event;

pub struct JsonRenderer<W: Write> {
    out: W,
}

impl<W: Write> JsonRenderer<W> {
    pub fn new(out: W) -> Self {
        JsonRenderer { out }
    }

    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
