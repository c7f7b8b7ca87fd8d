//! Registering a pool with kubelet: a `Register` call on `kubelet.sock`,
//! made once the pool's own socket is serving.

use std::path::Path;

use kubelet_api::deviceplugin::v1beta1::{
    registration_client::RegistrationClient, DevicePluginOptions, RegisterRequest, VERSION,
};

pub async fn register(
    kubelet_socket: &Path,
    endpoint: &str,
    resource_name: &str,
) -> Result<(), String> {
    let channel = kubelet_api::connect_unix(kubelet_socket)
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
