//! `maestro persist`: the SSH sessions kept between commands by the background maestro
//! (transport's persist daemon). The commands themselves reach it through the fleet
//! (`Endpoint::persist`); this is what the operator asks of it directly.

pub use crate::transport::{PersistStatus, SessionStatus};

/// What the daemon holds; `sessions: None` when none is running.
pub async fn status() -> Result<PersistStatus, String> {
    crate::transport::persist_status().await
}

/// Ends the daemon; false when none was running.
pub async fn stop() -> Result<bool, String> {
    crate::transport::persist_stop().await
}

/// Runs the daemon until it is idle or stopped (the hidden `persist serve`).
pub async fn serve() -> Result<i32, String> {
    let dir = crate::transport::persist_runtime_dir()?;
    Ok(crate::transport::persist_serve(&dir).await)
}
