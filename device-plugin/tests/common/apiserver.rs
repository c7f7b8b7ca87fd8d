//! A fake Kubernetes API server speaking the real REST protocol for what
//! the DRA frontend uses: Nodes (get), ResourceSlices (list with field
//! selectors, create, replace, delete) and ResourceClaims (get). Bodies are
//! JSON typed by k8s-openapi; a stale resourceVersion or an existing name
//! is a 409, a missing object a 404, and 500s can be asked for. Shared by
//! the tests and the lab's `fake-apiserver` example.
#![allow(dead_code)] // each user takes its own part

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use serde_json::json;

pub const NODE: &str = "worker-1";
pub const NODE_UID: &str = "0c5e1d3a-0000-4000-8000-00000000000a";

#[derive(Default)]
pub struct Server {
    pub slices: BTreeMap<String, ResourceSlice>,
    pub version: u64,
    /// Answer this many requests with 500 first.
    pub failures: usize,
    /// Answer this many replaces with 409 first, as if someone wrote first.
    pub conflicts: usize,
    pub writes: Vec<String>,
    /// ResourceClaims by namespace and name.
    pub claims: BTreeMap<(String, String), ResourceClaim>,
    /// Claims read from `<dir>/<namespace>/<name>.json` when not in
    /// `claims` (the lab writes them there).
    pub claims_dir: Option<std::path::PathBuf>,
    /// Claim reads, as `namespace/name`.
    pub claim_reads: Vec<String>,
    /// Every request, as method and path.
    pub requests: Vec<(String, String)>,
    /// How long a claim read takes to be answered.
    pub claim_delay: std::time::Duration,
}

pub type Shared = Arc<Mutex<Server>>;

pub fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub fn ok(value: impl serde::Serialize) -> Response {
    let body = serde_json::to_string(&value).unwrap();
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// A 500 if one is due.
pub fn failing(server: &mut Server) -> Option<Response> {
    (server.failures > 0).then(|| {
        server.failures -= 1;
        status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "etcd is down",
        )
    })
}

async fn node(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    if let Some(failure) = failing(&mut shared.lock().unwrap()) {
        return failure;
    }
    if name != NODE {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such node");
    }
    ok(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "uid": NODE_UID}}))
}

/// `spec.nodeName=X,spec.driver=Y`, as the API server reads field selectors.
fn selected(query: &str, slice: &ResourceSlice) -> bool {
    let selector = query
        .split('&')
        .find_map(|p| p.strip_prefix("fieldSelector="))
        .map(|s| s.replace("%3D", "=").replace("%2C", ","))
        .unwrap_or_default();
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some(("spec.nodeName", v)) => slice.spec.node_name.as_deref() == Some(v),
            Some(("spec.driver", v)) => slice.spec.driver == v,
            _ => panic!("unexpected selector {term}"),
        })
}

/// A list, whole or as metadata only (`Accept: ...;as=PartialObjectMetadataList`,
/// as the API server answers it).
async fn list(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let server = &mut shared.lock().unwrap();
    if let Some(failure) = failing(server) {
        return failure;
    }
    let query = query.unwrap_or_default();
    let items: Vec<&ResourceSlice> = server
        .slices
        .values()
        .filter(|s| selected(&query, s))
        .collect();
    let metadata_only = headers
        .get("accept")
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadataList"));
    let version = server.version.to_string();
    if metadata_only {
        let items: Vec<_> = items
            .iter()
            .map(|s| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                            "metadata": s.metadata})
            })
            .collect();
        return ok(
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
            "metadata": {"resourceVersion": version}, "items": items}),
        );
    }
    ok(
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSliceList",
        "metadata": {"resourceVersion": version}, "items": items}),
    )
}

fn store(server: &mut Server, mut slice: ResourceSlice) -> Response {
    server.version += 1;
    slice.metadata.resource_version = Some(server.version.to_string());
    let name = slice.metadata.name.clone().unwrap();
    server.slices.insert(name, slice.clone());
    ok(slice)
}

async fn create(State(shared): State<Shared>, body: Bytes) -> Response {
    let server = &mut shared.lock().unwrap();
    if let Some(failure) = failing(server) {
        return failure;
    }
    let slice: ResourceSlice = serde_json::from_slice(&body).expect("a ResourceSlice");
    let name = slice.metadata.name.clone().expect("a name");
    server.writes.push(format!("create {name}"));
    if server.slices.contains_key(&name) {
        return status(StatusCode::CONFLICT, "AlreadyExists", "already exists");
    }
    store(server, slice)
}

async fn replace(State(shared): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let server = &mut shared.lock().unwrap();
    if let Some(failure) = failing(server) {
        return failure;
    }
    let slice: ResourceSlice = serde_json::from_slice(&body).expect("a ResourceSlice");
    server.writes.push(format!("replace {name}"));
    let current = server
        .slices
        .get(&name)
        .map(|s| s.metadata.resource_version.clone());
    if server.conflicts > 0 {
        server.conflicts -= 1;
        server.version += 1;
        let version = server.version.to_string();
        if let Some(s) = server.slices.get_mut(&name) {
            s.metadata.resource_version = Some(version);
        }
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified",
        );
    }
    match current {
        None => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
        Some(version) if version != slice.metadata.resource_version => status(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified",
        ),
        Some(_) => store(server, slice),
    }
}

async fn delete(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    let server = &mut shared.lock().unwrap();
    if let Some(failure) = failing(server) {
        return failure;
    }
    server.writes.push(format!("delete {name}"));
    match server.slices.remove(&name) {
        Some(slice) => ok(slice),
        None => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
    }
}

async fn claim(
    State(shared): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let delay = shared.lock().unwrap().claim_delay;
    tokio::time::sleep(delay).await;
    let server = &mut shared.lock().unwrap();
    if let Some(failure) = failing(server) {
        return failure;
    }
    server.claim_reads.push(format!("{namespace}/{name}"));
    let key = (namespace.clone(), name.clone());
    let from_dir = server.claims_dir.as_ref().and_then(|dir| {
        let text = std::fs::read(dir.join(&namespace).join(format!("{name}.json"))).ok()?;
        serde_json::from_slice::<ResourceClaim>(&text).ok()
    });
    match server.claims.get(&key).cloned().or(from_dir) {
        Some(claim) => ok(claim),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "resourceclaims not found",
        ),
    }
}

/// Notes every request before it is answered.
async fn record(
    State(shared): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let entry = (
        request.method().to_string(),
        request.uri().path().to_string(),
    );
    shared.lock().unwrap().requests.push(entry);
    next.run(request).await
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/v1/nodes/{name}", get(node))
        .route(
            "/apis/resource.k8s.io/v1/resourceslices",
            get(list).post(create),
        )
        .route(
            "/apis/resource.k8s.io/v1/resourceslices/{name}",
            axum::routing::put(replace).delete(delete),
        )
        .route(
            "/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaims/{name}",
            get(claim),
        )
        .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

pub async fn serve_on(listener: tokio::net::TcpListener, shared: Shared) {
    tokio::spawn(async move { axum::serve(listener, router(shared)).await.unwrap() });
}

pub async fn start(shared: Shared) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    serve_on(listener, shared).await;
    address
}

pub fn client(address: SocketAddr) -> kube::Client {
    let config = kube::Config::new(format!("http://{address}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

/// A kubeconfig for the fake API server.
pub fn kubeconfig(dir: &std::path::Path, address: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{address}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n\
         users:\n- name: fake\n  user: {{}}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A claim in namespace `namespace` allocated `devices` of `pool` from
/// `driver`, each as `(request, device)`, as the scheduler writes it.
pub fn allocated_claim(
    namespace: &str,
    name: &str,
    uid: &str,
    driver: &str,
    pool: &str,
    devices: &[(&str, &str)],
) -> ResourceClaim {
    let results: Vec<_> = devices
        .iter()
        .map(|(request, device)| {
            json!({"request": request, "driver": driver, "pool": pool, "device": device})
        })
        .collect();
    let requests: Vec<_> = devices
        .iter()
        .map(|(request, _)| request.split('/').next().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|request| json!({"name": request, "exactly": {"deviceClassName": "sriov-vf"}}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"namespace": namespace, "name": name, "uid": uid, "resourceVersion": "7"},
        "spec": {"devices": {"requests": requests}},
        "status": {"allocation": {"devices": {"results": results}}},
    }))
    .unwrap()
}
