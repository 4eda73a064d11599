//! What we ask of one ship's Docker daemon.
//!
//! The transport layer hands us a connected [`bollard::Docker`]; a [`Ship`] wraps it with the
//! ship's name and offers the typed operations orchestrate needs. The container to create is
//! described by a [`ContainerSpec`], independent of the environment file's model.

mod credentials;
mod deployment;
mod error;
mod lock;
pub mod logs;
mod packed;
mod progress;
pub mod push;
mod retry;
mod ship;
mod spec;
mod status;

pub use credentials::{Credentials, CredentialsError, registry_of_image};
pub use deployment::{DEPLOYMENT_LABEL, Deployment, HISTORY_LABEL};
pub use error::{DockerError, ErrorKind};
pub use lock::{LOCK_IMAGE, LOCK_LABEL, LockClaim, LockObject};
pub use logs::{LogLine, LogQuery, LogSource, LogStream};
pub use progress::{PullProgress, PullTracker};
pub use retry::RetryPolicy;
pub use ship::{
    DockerVersion, ExecOutcome, ExecOutput, ExecRequest, ExecSession, ImageFacts, ManagedContainer,
    PublishedPort, PullRetry, Ship,
};
pub use spec::{
    BindMount, ContainerSpec, Device, ENVIRONMENT_LABEL, Healthcheck, HostPort, INSTANCE_LABEL,
    Limits, Link, MountMode, NetworkAttachment, PortSpec, Protocol, RestartPolicy,
    RestartPolicyName, SERVICE_LABEL, SPEC_HASH_LABEL, SPEC_LABEL, SpecChange, Ulimit,
};
pub use status::{ContainerDetails, ContainerStatus, HealthState, parse_status_age};
