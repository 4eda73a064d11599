//! Running work over a fleet: the [`executor`] schedules jobs over a dependency graph, as
//! soon as what each waits on is done, within concurrency limits; the [`fleet`] owns a run's
//! connections; [`cancel`] is the two-level Ctrl-C; [`events`] is what a run tells (steps,
//! outcomes, the summary). It knows nothing of what a job does: deploy's operations do that.
//!
//! May import: [`super::plan`], `transport`, `docker`, `config`.

pub mod cancel;
pub mod events;
pub mod executor;
pub mod fleet;
