//! Keeps a node's ResourceSlices on the API server equal to its pools.
//!
//! Each pass lists the slices of this node and driver (a field selector,
//! metadata only), compares them with what the pools give by digest, and
//! writes only when they differ: creates, replaces (with the
//! resourceVersion read, so a concurrent writer is a 409, not a lost
//! update) and deletes the stale ones (a restart with fewer devices, or a
//! previous daemon's). The pool's generation goes up whenever its content
//! changes, and every slice is rewritten with it, so a reader never mixes
//! slices of two generations as one pool.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node as KubeNode;
use k8s_openapi::api::resource::v1::ResourceSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use tracing::{debug, warn};

use super::slices::{digest, slice_name, Node, Plan};

/// Annotations of our slices: the digest of the spec, and the pool's
/// generation, so that a pass reads back metadata only.
const DIGEST: &str = "sriovnetwork.k8snetworkplumbingwg.io/spec-digest";
const GENERATION: &str = "sriovnetwork.k8snetworkplumbingwg.io/pool-generation";
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

    fn selector(&self) -> ListParams {
        ListParams::default().fields(&format!(
            "spec.nodeName={},spec.driver={}",
            self.node.name, self.driver
        ))
    }

    fn list_error(&self, source: kube::Error) -> PublishError {
        PublishError::List {
            node: self.node.name.clone(),
            source,
        }
    }

    /// The names, resourceVersions and annotations of this node's slices:
    /// what a pass compares, without their devices.
    async fn existing(&self) -> Result<Vec<ObjectMeta>, PublishError> {
        self.slices
            .list_metadata(&self.selector())
            .await
            .map(|list| list.items.into_iter().map(|s| s.metadata).collect())
            .map_err(|source| self.list_error(source))
    }

    /// The pool's generation, read from the slices' specs: for slices
    /// without our annotations (written by an older daemon, or another).
    async fn generation_in_specs(&self) -> Result<i64, PublishError> {
        let list = self
            .slices
            .list(&self.selector())
            .await
            .map_err(|source| self.list_error(source))?;
        Ok(list
            .items
            .iter()
            .map(|s| s.spec.pool.generation)
            .max()
            .unwrap_or(0))
    }

    /// One pass: the API server ends up with exactly the pools' slices.
    /// Slices are compared by digest ([`digest`], kept in an annotation with
    /// the generation), built one at a time, and written only when the pool
    /// changed, then all of them, with the next generation.
    pub async fn publish(&self, pools: &[PoolView]) -> Result<Changes, PublishError> {
        let existing = self.existing().await?;
        let plan = Plan::new(pools);
        let digests: Vec<String> = (0..plan.count())
            .map(|index| digest(&plan.slice(&self.driver, &self.node, 0, index).spec))
            .collect();
        let annotation = |meta: &ObjectMeta, key: &str| {
            meta.annotations.as_ref().and_then(|a| a.get(key)).cloned()
        };
        let generations: Option<Vec<i64>> = existing
            .iter()
            .map(|m| annotation(m, GENERATION)?.parse().ok())
            .collect();
        let current = match generations {
            Some(generations) => generations.into_iter().max().unwrap_or(0),
            None => self.generation_in_specs().await?,
        };
        let name = |index| slice_name(&self.node.name, &self.driver, index);
        let unchanged = existing.len() == digests.len()
            && digests.iter().enumerate().all(|(index, digest)| {
                existing.iter().any(|m| {
                    m.name.as_deref() == Some(&name(index))
                        && annotation(m, DIGEST).as_ref() == Some(digest)
                        && annotation(m, GENERATION) == Some(current.to_string())
                })
            });
        let generation = if unchanged { current } else { current + 1 };
        let mut changes = Changes {
            generation,
            ..Changes::default()
        };
        if unchanged {
            return Ok(changes);
        }
        for (index, digest) in digests.iter().enumerate() {
            let mut slice = plan.slice(&self.driver, &self.node, generation, index);
            let name = name(index);
            slice.metadata.annotations = Some(
                [
                    (DIGEST.to_string(), digest.clone()),
                    (GENERATION.to_string(), generation.to_string()),
                ]
                .into(),
            );
            let write = |action, source| PublishError::Write {
                action,
                name: name.clone(),
                source,
            };
            match existing.iter().find(|m| m.name.as_deref() == Some(&name)) {
                Some(old) => {
                    slice.metadata.resource_version = old.resource_version.clone();
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
            let stale = old.name.as_deref().unwrap_or_default();
            if !(0..digests.len()).any(|index| name(index) == stale) {
                self.delete(stale).await?;
                changes.deleted += 1;
            }
        }
        Ok(changes)
    }

    /// Deletes every slice of this node and driver (at shutdown, when asked).
    pub async fn remove_all(&self) -> Result<usize, PublishError> {
        let existing = self.existing().await?;
        for meta in &existing {
            self.delete(meta.name.as_deref().unwrap_or_default())
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
