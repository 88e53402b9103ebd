//! Leader election on a `coordination.k8s.io/v1` Lease, so only one replica of an operator
//! acts at a time.
//!
//! Built on `kube-lease-manager` (0.13, on kube 5): it takes the Lease with server-side
//! apply (so two candidates cannot both win), renews it `grace` seconds before it expires,
//! takes over an expired Lease, and releases it when asked. [`Leadership`] wraps it in the
//! shape operators need: wait until leading, notice losing, release on shutdown.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), datum_runtime::leader::Error> {
//! use datum_runtime::leader::{LeaseOptions, Leadership};
//!
//! let mut leadership = Leadership::start(client, LeaseOptions::new("datum-system", "sim-provider", "pod-a")).await?;
//! leadership.acquired().await;
//! // ... run controllers until `leadership.lost()` or shutdown ...
//! leadership.release().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Lease could not be read or created.
    #[error("failed to set up the lease {namespace}/{name}: {source}")]
    Setup {
        namespace: String,
        name: String,
        source: LeaseManagerError,
    },
    /// Releasing the Lease failed; another replica takes over once it expires.
    #[error("failed to release the lease: {0}")]
    Release(#[source] LeaseManagerError),
    /// The task holding the Lease ended abnormally.
    #[error("the lease holder task ended abnormally: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Which Lease to hold, as whom, and for how long.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name, the same for every replica of one operator.
    pub name: String,
    /// This replica's identity (e.g. the pod name), unique among replicas.
    pub identity: String,
    /// How long the Lease stays valid after the last renewal (whole seconds, at least 2).
    pub duration: Duration,
    /// How long before expiry the holder renews (whole seconds, at least 1, less than
    /// `duration`).
    pub grace: Duration,
}

impl LeaseOptions {
    /// A 15-second Lease renewed 5 seconds before it expires.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }

    /// The duration and grace in whole seconds, corrected to `duration >= 2` and
    /// `1 <= grace < duration`.
    fn seconds(&self) -> (u64, u64) {
        let duration = self.duration.as_secs().max(2);
        let grace = self.grace.as_secs().clamp(1, duration - 1);
        (duration, grace)
    }
}

/// A replica's candidacy for a Lease, running in the background.
#[derive(Debug)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Starts competing for the Lease (creating it if absent).
    pub async fn start(client: Client, options: LeaseOptions) -> Result<Self, Error> {
        let (duration, grace) = options.seconds();
        let manager = LeaseManagerBuilder::new(client, &options.name)
            .with_namespace(&options.namespace)
            .with_identity(&options.identity)
            .with_field_manager(format!("datum-lease-{}", options.identity))
            .with_duration(duration)
            .with_grace(grace)
            .build()
            .await
            .map_err(|source| Error::Setup {
                namespace: options.namespace.clone(),
                name: options.name.clone(),
                source,
            })?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Whether this replica holds the Lease now.
    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquired(&mut self) {
        // An error means the manager task ended; then leadership never comes.
        if self.state.wait_for(|leading| *leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until this replica no longer holds the Lease (lost it, or the manager ended).
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leading| !*leading).await;
    }

    /// Stops competing and releases the Lease if held, so another replica takes over at
    /// once rather than after expiry.
    pub async fn release(self) -> Result<(), Error> {
        let Self { state, task } = self;
        drop(state); // closing the channel makes the manager release and return
        match task.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(Error::Release(error)),
            Err(error) => Err(Error::Task(error)),
        }
    }

    /// Stops competing without releasing, as a crashed process would: the Lease stays
    /// held until it expires.
    pub fn abandon(self) {
        self.task.abort();
    }
}
