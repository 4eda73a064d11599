//! The commands that change ships: one run of one action over a plan, or a restart
//! ([`lifecycle`]), each job's operation on one instance ([`ops`]) with its lifecycle
//! [`checks`], under the environment's deploy [`lock`] and told to its auditors ([`audit`]).
//!
//! May import: [`super::engine`], [`super::plan`], `docker`, `transport`, `config`,
//! `secrets`. Not observe or session.

pub mod audit;
pub mod checks;
pub mod lifecycle;
pub mod lock;
pub mod ops;
pub mod push;
