//! The Kubernetes API client of the DRA frontend, which publishes slices
//! and reads claims.

use kube::Client;

/// Where the Kubernetes API is: a kubeconfig file, or the pod's service
/// account (`KUBERNETES_SERVICE_HOST`, an IP address).
///
/// The client's stack is built here rather than by kube's defaults, which
/// resolve host names with glibc's getaddrinfo and look for
/// `~/.kube/config` through the password database: both are NSS, which a
/// static binary in an image with no libraries cannot load. Hosts must be
/// IP addresses; `deploy/build-static.sh` checks that NSS stays out.
pub async fn connect(kubeconfig: Option<&std::path::Path>) -> Result<Client, String> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;
    let config = match kubeconfig {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            let file = kube::config::Kubeconfig::from_yaml(&text)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => kube::Config::incluster()
            .map_err(|e| format!("no in-cluster Kubernetes API configuration: {e}"))?,
    };
    let mut http = HttpConnector::new_with_resolver(IpOnly);
    http.enforce_http(false);
    // An API server that does not answer must not hold a claim or a
    // publishing pass for good.
    http.set_connect_timeout(Some(TIMEOUT));
    if config.cluster_url.scheme_str() == Some("http") {
        // No TLS: the roots rustls would load are not needed (an image
        // without a system CA store has none to load).
        return finish(config, http);
    }
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(|e| e.to_string())?;
    finish(config, https)
}

/// How long connecting may take; each request is also bounded by its
/// caller.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The client over `connector`, with kubeconfig's base URI, auth and
/// headers.
fn finish<C>(config: kube::Config, connector: C) -> Result<Client, String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    use kube::client::ConfigExt;
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(|e| e.to_string())?)
        .layer(config.extra_headers_layer().map_err(|e| e.to_string())?)
        .map_err(tower::BoxError::from)
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector),
        );
    Ok(Client::new(service, config.default_namespace))
}

/// A kube error for a person: the API server's own message and code
/// rather than kube's rendering, which repeats it in Rust's debug form.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}

/// A resolver for an API server named by IP address, which needs none.
#[derive(Clone)]
struct IpOnly;

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for IpOnly {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        std::future::ready(Err(std::io::Error::other(format!(
            "the Kubernetes API server's host {name} is not an IP address (host names are not resolved)"
        ))))
    }
}
