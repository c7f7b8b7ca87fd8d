//! Registering a pool with kubelet: a `Register` call on `kubelet.sock`,
//! made once the pool's own socket is serving.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use kubelet_api::deviceplugin::v1beta1::{
    registration_client::RegistrationClient, DevicePluginOptions, RegisterRequest, VERSION,
};
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};

pub async fn register(
    kubelet_socket: &Path,
    endpoint: &str,
    resource_name: &str,
) -> Result<(), String> {
    let socket: PathBuf = kubelet_socket.to_path_buf();
    let channel = Endpoint::try_from("http://localhost")
        .map_err(|e| e.to_string())?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|e| format!("connect {}: {e}", kubelet_socket.display()))?;
    RegistrationClient::new(channel)
        .register(RegisterRequest {
            version: VERSION.to_string(),
            endpoint: endpoint.to_string(),
            resource_name: resource_name.to_string(),
            options: Some(DevicePluginOptions {
                pre_start_required: false,
                get_preferred_allocation_available: true,
            }),
        })
        .await
        .map_err(|e| {
            format!(
                "register {resource_name} with {}: {}",
                kubelet_socket.display(),
                e.message()
            )
        })?;
    Ok(())
}
