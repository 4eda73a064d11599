//! The orchestration layer: the plan (which instances, in which order), the executor that
//! runs it across ships, and the events it emits for the renderers in `ui`.

pub mod events;
pub mod executor;
pub mod plan;
pub mod fleet;
