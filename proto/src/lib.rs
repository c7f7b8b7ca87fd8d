//! The kubelet gRPC APIs a device plugin and a DRA driver speak, with tonic
//! server and client types for each. The `.proto` files under `proto/` say which Kubernetes
//! release they match.

/// Device plugin API: `Registration` (served by kubelet) and `DevicePlugin`
/// (served by the plugin).
pub mod deviceplugin {
    pub mod v1beta1 {
        tonic::include_proto!("v1beta1");

        /// The version string a plugin registers with.
        pub const VERSION: &str = "v1beta1";
        pub const HEALTHY: &str = "Healthy";
        pub const UNHEALTHY: &str = "Unhealthy";
        /// Where kubelet expects plugin sockets and serves `kubelet.sock`.
        pub const DEVICE_PLUGIN_PATH: &str = "/var/lib/kubelet/device-plugins";
        pub const KUBELET_SOCKET: &str = "kubelet.sock";
    }
}

/// Pod resources API, served by kubelet.
pub mod podresources {
    pub mod v1 {
        tonic::include_proto!("v1");

        pub const KUBELET_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
    }
}

/// Plugin watcher registration API, served by the plugin.
pub mod pluginregistration {
    pub mod v1 {
        tonic::include_proto!("pluginregistration");

        /// Where kubelet's plugin watcher looks for plugin sockets.
        pub const PLUGINS_REGISTRY_PATH: &str = "/var/lib/kubelet/plugins_registry";
        pub const DEVICE_PLUGIN: &str = "DevicePlugin";
        pub const DRA_PLUGIN: &str = "DRAPlugin";
    }
}

/// Dynamic Resource Allocation: `DRAPlugin`, served by a driver for kubelet.
pub mod dra {
    /// Kubernetes 1.34 and later.
    pub mod v1 {
        tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1");

        /// The version a driver lists in its registration's
        /// `supported_versions`.
        pub const VERSION: &str = "v1.DRAPlugin";
    }

    /// Kubernetes 1.32 and 1.33; the same messages as v1.
    pub mod v1beta1 {
        tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1beta1");

        pub const VERSION: &str = "v1beta1.DRAPlugin";
    }
}

/// DRA device health: `DRAResourceHealth`, optionally served by a driver.
pub mod drahealth {
    pub mod v1alpha1 {
        tonic::include_proto!("v1alpha1");
    }
}

pub mod legacy_authority;

#[cfg(feature = "fake-kubelet")]
pub mod fake_kubelet;

/// A gRPC channel to a unix socket, as kubelet and plugins dial each other.
pub async fn connect_unix(
    path: impl AsRef<std::path::Path>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path = path.as_ref().to_path_buf();
    // The URI is required but unused: every connection goes to the socket.
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}
