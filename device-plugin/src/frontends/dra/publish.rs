//! Keeps a node's ResourceSlices on the API server equal to its pools.
//!
//! Each pass lists the slices of this node and driver (a field selector),
//! compares them with what the pools give, and writes only what differs:
//! creates, replaces (with the resourceVersion read, so a concurrent writer
//! is a 409, not a lost update) and deletes the stale ones (a restart with
//! fewer devices, or a previous daemon's). The pool's generation goes up
//! whenever its content changes, and every slice is rewritten with it, so
//! a reader never mixes slices of two generations as one pool.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node as KubeNode;
use k8s_openapi::api::resource::v1::ResourceSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use tracing::{debug, warn};

use super::slices::{slices, Node};
use crate::core::view::PoolView;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("node {node}: {}", super::client::describe(source))]
    Node { node: String, source: kube::Error },
    #[error("node {node} has no uid")]
    NoUid { node: String },
    #[error("{action} ResourceSlice {name}: {}", super::client::describe(source))]
    Write {
        action: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("no answer from the API server within {} s", PASS_TIMEOUT.as_secs())]
    NoAnswer,
    #[error(
        "list ResourceSlices of node {node}: {}",
        super::client::describe(source)
    )]
    List { node: String, source: kube::Error },
}

impl PublishError {
    /// Someone else wrote first: read again and retry at once.
    pub fn is_conflict(&self) -> bool {
        match self {
            PublishError::Write {
                source: kube::Error::Api(status),
                ..
            } => status.is_conflict() || status.is_already_exists(),
            _ => false,
        }
    }
}

/// What one pass did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub created: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub generation: i64,
}

pub struct Publisher {
    slices: Api<ResourceSlice>,
    driver: String,
    node: Node,
}

impl Publisher {
    /// Reads the Node (its uid owns the slices).
    pub async fn connect(client: Client, driver: &str, node: &str) -> Result<Self, PublishError> {
        let found = Api::<KubeNode>::all(client.clone())
            .get(node)
            .await
            .map_err(|source| PublishError::Node {
                node: node.into(),
                source,
            })?;
        let uid = found
            .metadata
            .uid
            .ok_or_else(|| PublishError::NoUid { node: node.into() })?;
        Ok(Publisher {
            slices: Api::all(client),
            driver: driver.into(),
            node: Node {
                name: node.into(),
                uid,
            },
        })
    }

    async fn existing(&self) -> Result<Vec<ResourceSlice>, PublishError> {
        let selector = format!(
            "spec.nodeName={},spec.driver={}",
            self.node.name, self.driver
        );
        self.slices
            .list(&ListParams::default().fields(&selector))
            .await
            .map(|list| list.items)
            .map_err(|source| PublishError::List {
                node: self.node.name.clone(),
                source,
            })
    }

    /// One pass: the API server ends up with exactly the pools' slices.
    pub async fn publish(&self, pools: &[PoolView]) -> Result<Changes, PublishError> {
        let existing = self.existing().await?;
        let current = existing
            .iter()
            .map(|s| s.spec.pool.generation)
            .max()
            .unwrap_or(0);
        let mut generation = current;
        let mut desired = slices(&self.driver, &self.node, generation, pools);
        if !same_content(&desired, &existing) {
            generation = current + 1;
            desired = slices(&self.driver, &self.node, generation, pools);
        }
        let mut changes = Changes {
            generation,
            ..Changes::default()
        };
        for mut slice in desired.iter().cloned() {
            let name = slice.metadata.name.clone().unwrap_or_default();
            let found = existing
                .iter()
                .find(|e| e.metadata.name.as_deref() == Some(&name));
            let write = |action, source| PublishError::Write {
                action,
                name: name.clone(),
                source,
            };
            match found {
                Some(old) if old.spec == slice.spec => {}
                Some(old) => {
                    slice.metadata.resource_version = old.metadata.resource_version.clone();
                    self.slices
                        .replace(&name, &PostParams::default(), &slice)
                        .await
                        .map_err(|e| write("replace", e))?;
                    changes.replaced += 1;
                }
                None => {
                    self.slices
                        .create(&PostParams::default(), &slice)
                        .await
                        .map_err(|e| write("create", e))?;
                    changes.created += 1;
                }
            }
        }
        for old in &existing {
            let name = old.metadata.name.clone().unwrap_or_default();
            if desired
                .iter()
                .all(|d| d.metadata.name.as_deref() != Some(&name))
            {
                self.delete(&name).await?;
                changes.deleted += 1;
            }
        }
        Ok(changes)
    }

    /// Deletes every slice of this node and driver (at shutdown, when asked).
    pub async fn remove_all(&self) -> Result<usize, PublishError> {
        let existing = self.existing().await?;
        for slice in &existing {
            self.delete(slice.metadata.name.as_deref().unwrap_or_default())
                .await?;
        }
        Ok(existing.len())
    }

    async fn delete(&self, name: &str) -> Result<(), PublishError> {
        match self.slices.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            // Gone already: what deleting wanted.
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            Err(source) => Err(PublishError::Write {
                action: "delete",
                name: name.into(),
                source,
            }),
        }
    }
}

/// Whether the slices there hold what `desired` holds, generation aside.
fn same_content(desired: &[ResourceSlice], existing: &[ResourceSlice]) -> bool {
    desired.len() == existing.len()
        && desired.iter().all(|d| {
            existing
                .iter()
                .any(|e| e.metadata.name == d.metadata.name && e.spec == d.spec)
        })
}

/// How long one publishing pass may take.
const PASS_TIMEOUT: Duration = Duration::from_secs(60);

/// Publishes until a pass succeeds: conflicts are retried at once, other
/// failures (the API server down or answering 500) after a backoff that
/// doubles from 100 ms to 30 s. Never gives up: the daemon keeps serving
/// the device plugin meanwhile.
pub async fn publish_until_done(publisher: &Publisher, pools: &[PoolView]) -> Changes {
    let mut backoff = Duration::from_millis(100);
    loop {
        // A pass that hangs (an API server that accepts and never answers)
        // is a failure like any other.
        let pass = tokio::time::timeout(PASS_TIMEOUT, publisher.publish(pools)).await;
        match pass.unwrap_or(Err(PublishError::NoAnswer)) {
            Ok(changes) => {
                debug!(?changes, "ResourceSlices published");
                return changes;
            }
            Err(e) if e.is_conflict() => debug!("{e}; reading again"),
            Err(e) => {
                warn!("{e}; retrying in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The daemon's DRA publishing task: publishes every set of pools `pools`
/// sends (always the latest), until it sends None (shutdown), when it
/// deletes this node's slices if `delete_on_exit`. Connecting is retried
/// with backoff like publishing; a new set interrupts a pass in progress.
pub async fn run(
    node: String,
    kubeconfig: Option<std::path::PathBuf>,
    delete_on_exit: bool,
    mut pools: tokio::sync::watch::Receiver<Option<Vec<PoolView>>>,
) {
    let mut backoff = Duration::from_millis(100);
    let publisher = loop {
        let connected = async {
            let client = super::client::connect(kubeconfig.as_deref()).await?;
            Publisher::connect(client, super::DRIVER, &node)
                .await
                .map_err(|e| e.to_string())
        };
        match connected.await {
            Ok(publisher) => break publisher,
            Err(e) => warn!("DRA: {e}; retrying in {} ms", backoff.as_millis()),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            changed = pools.changed() => {
                if changed.is_err() || pools.borrow().is_none() {
                    return;
                }
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    };
    loop {
        let Some(current) = pools.borrow_and_update().clone() else {
            if delete_on_exit {
                match publisher.remove_all().await {
                    Ok(count) => debug!("deleted {count} ResourceSlices"),
                    Err(e) => warn!("DRA: {e}"),
                }
            }
            return;
        };
        tokio::select! {
            changes = publish_until_done(&publisher, &current) => {
                if changes.created + changes.replaced + changes.deleted > 0 {
                    tracing::info!(
                        "ResourceSlices of {node}: generation {}, {} created, {} replaced, {} deleted",
                        changes.generation, changes.created, changes.replaced, changes.deleted
                    );
                }
                if pools.changed().await.is_err() {
                    return;
                }
            }
            changed = pools.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
