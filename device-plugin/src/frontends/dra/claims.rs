//! A ResourceClaim's allocation, as the API server holds it: kubelet's
//! prepare call names the claim only (namespace, name, uid); which devices
//! the scheduler gave it, and for which requests, is read here.

use k8s_openapi::api::resource::v1::ResourceClaim;
use kube::{Api, Client};

/// One device the scheduler allocated to a claim from our driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    /// The claim's request it satisfies; for a subrequest of a prioritized
    /// list (`request/subrequest`), the request, which is what containers
    /// name.
    pub request: String,
    pub pool: String,
    pub device: String,
    /// Admin access: to watch a device, even one another claim holds.
    pub admin_access: bool,
}

/// Why a claim's allocation could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "read ResourceClaim {namespace}/{name}: {}",
        super::client::describe(source)
    )]
    Read {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("ResourceClaim {namespace}/{name} has uid {found}, not {wanted}: it was deleted and created again")]
    Replaced {
        namespace: String,
        name: String,
        found: String,
        wanted: String,
    },
    #[error("ResourceClaim {namespace}/{name} is not allocated")]
    NotAllocated { namespace: String, name: String },
}

/// The devices `driver` was allocated in the claim `namespace/name`, which
/// must still be the claim with `uid`.
pub async fn allocated(
    client: &Client,
    driver: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Vec<Allocated>, ClaimError> {
    let claim = Api::<ResourceClaim>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|source| ClaimError::Read {
            namespace: namespace.into(),
            name: name.into(),
            source,
        })?;
    let found = claim.metadata.uid.clone().unwrap_or_default();
    if found != uid {
        return Err(ClaimError::Replaced {
            namespace: namespace.into(),
            name: name.into(),
            found,
            wanted: uid.into(),
        });
    }
    results(&claim, driver).ok_or_else(|| ClaimError::NotAllocated {
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// The allocation results of `driver` in a claim; None when the claim is
/// not allocated.
pub fn results(claim: &ResourceClaim, driver: &str) -> Option<Vec<Allocated>> {
    let allocation = claim.status.as_ref()?.allocation.as_ref()?;
    let results = allocation
        .devices
        .as_ref()
        .and_then(|d| d.results.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    Some(
        results
            .iter()
            .filter(|r| r.driver == driver)
            .map(|r| Allocated {
                request: r.request.split('/').next().unwrap_or_default().to_string(),
                pool: r.pool.clone(),
                device: r.device.clone(),
                admin_access: r.admin_access == Some(true),
            })
            .collect(),
    )
}
