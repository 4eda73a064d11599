//! The orchestration layer: the plan (which instances, in which order), the executor that
//! runs it across ships, and the events it emits for the renderers in `ui`.

pub mod audit;
pub mod autoconf;
pub mod checks;
pub mod events;
pub mod exec;
pub mod executor;
pub mod fleet;
pub mod forward;
pub mod history;
pub mod lifecycle;
pub mod lock;
pub mod logs;
pub mod ops;
pub mod plan;
pub mod secrets;
pub mod ships;
pub mod spec;
pub mod status;
