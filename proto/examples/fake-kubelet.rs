//! A fake kubelet on the command line, for the lab and demos:
//!
//!   fake-kubelet watch DIR
//!       serves DIR/kubelet.sock; for every registration prints
//!       `registered RESOURCE ENDPOINT`, dials the plugin back and prints
//!       each ListAndWatch list as `list RESOURCE ID=HEALTH[@NUMA] ...`.
//!   fake-kubelet plugins REGISTRY ROOT
//!       plays kubelet's plugin watcher on the REGISTRY directory: for every
//!       registration socket that appears, GetInfo, then dial its endpoint
//!       (an absolute path, looked up under ROOT) and print
//!       `registered NAME ENDPOINT`, confirm the registration
//!       (NotifyRegistrationStatus), and print its lists as `watch` does;
//!       for a DRA driver, print its health stream as
//!       `health POOL/DEVICE=HEALTH ...`.
//!   fake-kubelet prepare|unprepare SOCKET NAMESPACE NAME UID
//!       one DRA NodePrepareResources (or NodeUnprepareResources) call for
//!       one claim; prints `device POOL DEVICE REQUESTS CDI-IDS` lines, or
//!       `error MESSAGE` and fails.
//!   fake-kubelet allocate SOCKET ID...
//!       one Allocate call for one container; prints `env NAME=VALUE`,
//!       `device HOST CONTAINER PERMISSIONS`, `cdi NAME` lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kubelet_api::deviceplugin::v1beta1::{
    device_plugin_client::DevicePluginClient, AllocateRequest, ContainerAllocateRequest, Empty,
};
use kubelet_api::dra::v1 as dra;
use kubelet_api::drahealth::v1alpha1 as health;
use kubelet_api::pluginregistration::v1::{
    registration_client::RegistrationClient, InfoRequest, RegistrationStatus, DRA_PLUGIN,
};

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn watch(dir: PathBuf) -> Result<(), String> {
    let mut registrations = kubelet_api::fake_kubelet::serve(&dir)
        .map_err(|e| format!("serve {}: {e}", dir.display()))?;
    while let Some(request) = registrations.recv().await {
        say(format!(
            "registered {} {}",
            request.resource_name, request.endpoint
        ));
        let socket = dir.join(&request.endpoint);
        tokio::spawn(async move {
            if let Err(e) = print_lists(&request.resource_name, &socket).await {
                say(format!("error {} {e}", request.resource_name));
            }
        });
    }
    Ok(())
}

async fn plugins(registry: PathBuf, root: PathBuf) -> Result<(), String> {
    // Sockets being served; one whose plugin went away is registered again
    // when it is back (a restarted plugin makes its socket anew, which
    // kubelet's watcher sees as a new one).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    loop {
        let entries = std::fs::read_dir(&registry)
            .map_err(|e| format!("read {}: {e}", registry.display()))?;
        for socket in entries.flatten().map(|e| e.path()) {
            let new = seen
                .lock()
                .map(|mut s| s.insert(socket.clone()))
                .unwrap_or(false);
            if socket.extension().is_some_and(|x| x == "sock") && new {
                let (root, seen) = (root.clone(), seen.clone());
                tokio::spawn(async move {
                    if let Err(e) = register(&socket, &root).await {
                        say(format!("error {} {e}", socket.display()));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    if let Ok(mut seen) = seen.lock() {
                        seen.remove(&socket);
                    }
                });
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// What kubelet's plugin watcher does with one registration socket.
async fn register(socket: &Path, root: &Path) -> Result<(), String> {
    let channel = kubelet_api::connect_unix(socket)
        .await
        .map_err(|e| e.to_string())?;
    let mut watcher = RegistrationClient::new(channel);
    let info = watcher
        .get_info(InfoRequest {})
        .await
        .map_err(|e| format!("GetInfo: {}", e.message()))?
        .into_inner();
    let endpoint = root.join(info.endpoint.trim_start_matches('/'));
    // Kubelet dials the endpoint before it confirms the registration.
    let lists = kubelet_api::connect_unix(&endpoint)
        .await
        .map_err(|e| format!("connect {}: {e}", endpoint.display()))?;
    say(format!("registered {} {}", info.name, info.endpoint));
    watcher
        .notify_registration_status(RegistrationStatus {
            plugin_registered: true,
            error: String::new(),
        })
        .await
        .map_err(|e| format!("NotifyRegistrationStatus: {}", e.message()))?;
    if info.r#type == DRA_PLUGIN {
        print_health(lists).await
    } else {
        print_lists_on(&info.name, lists).await
    }
}

async fn print_health(channel: tonic::transport::Channel) -> Result<(), String> {
    let mut updates = health::dra_resource_health_client::DraResourceHealthClient::new(channel)
        .node_watch_resources(health::NodeWatchResourcesRequest {})
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    while let Some(update) = updates
        .message()
        .await
        .map_err(|e| e.message().to_string())?
    {
        let devices: Vec<String> = update
            .devices
            .iter()
            .map(|d| {
                let id = d.device.clone().unwrap_or_default();
                let health =
                    health::HealthStatus::try_from(d.health).map_or("Unknown", |h| h.as_str_name());
                format!("{}/{}={health}", id.pool_name, id.device_name)
            })
            .collect();
        say(format!("health {}", devices.join(" ")));
    }
    Ok(())
}

/// One DRA call for one claim, as kubelet makes it when a pod starts
/// (prepare) or is gone (unprepare).
async fn claim(prepare: bool, socket: PathBuf, claim: dra::Claim) -> Result<(), String> {
    let channel = kubelet_api::connect_unix(&socket)
        .await
        .map_err(|e| format!("connect {}: {e}", socket.display()))?;
    let mut driver = dra::dra_plugin_client::DraPluginClient::new(channel);
    let uid = claim.uid.clone();
    let error = if prepare {
        let mut answer = driver
            .node_prepare_resources(dra::NodePrepareResourcesRequest {
                claims: vec![claim],
            })
            .await
            .map_err(|e| format!("NodePrepareResources: {}", e.message()))?
            .into_inner();
        let answer = answer.claims.remove(&uid).unwrap_or_default();
        for d in &answer.devices {
            say(format!(
                "device {} {} {} {}",
                d.pool_name,
                d.device_name,
                d.request_names.join(","),
                d.cdi_device_ids.join(",")
            ));
        }
        answer.error
    } else {
        let mut answer = driver
            .node_unprepare_resources(dra::NodeUnprepareResourcesRequest {
                claims: vec![claim],
            })
            .await
            .map_err(|e| format!("NodeUnprepareResources: {}", e.message()))?
            .into_inner();
        answer.claims.remove(&uid).unwrap_or_default().error
    };
    if error.is_empty() {
        Ok(())
    } else {
        say(format!("error {error}"));
        Err(error)
    }
}

async fn print_lists(resource: &str, socket: &Path) -> Result<(), String> {
    let channel = kubelet_api::connect_unix(socket)
        .await
        .map_err(|e| e.to_string())?;
    print_lists_on(resource, channel).await
}

async fn print_lists_on(resource: &str, channel: tonic::transport::Channel) -> Result<(), String> {
    let mut lists = DevicePluginClient::new(channel)
        .list_and_watch(Empty {})
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    while let Some(list) = lists.message().await.map_err(|e| e.message().to_string())? {
        let devices: Vec<String> = list
            .devices
            .iter()
            .map(|d| {
                let numa = d
                    .topology
                    .as_ref()
                    .and_then(|t| t.nodes.first())
                    .map(|n| format!("@{}", n.id))
                    .unwrap_or_default();
                format!("{}={}{numa}", d.id, d.health)
            })
            .collect();
        say(format!("list {resource} {}", devices.join(" ")));
    }
    Ok(())
}

async fn allocate(socket: PathBuf, ids: Vec<String>) -> Result<(), String> {
    let channel = kubelet_api::connect_unix(&socket)
        .await
        .map_err(|e| format!("connect {}: {e}", socket.display()))?;
    let response = DevicePluginClient::new(channel)
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest { devices_ids: ids }],
        })
        .await
        .map_err(|e| format!("Allocate: {}", e.message()))?
        .into_inner();
    for container in response.container_responses {
        let mut envs: Vec<_> = container.envs.into_iter().collect();
        envs.sort();
        for (name, value) in envs {
            say(format!("env {name}={value}"));
        }
        for device in container.devices {
            say(format!(
                "device {} {} {}",
                device.host_path, device.container_path, device.permissions
            ));
        }
        for device in container.cdi_devices {
            say(format!("cdi {}", device.name));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fake-kubelet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match args.as_slice() {
        [command, dir] if command == "watch" => runtime.block_on(watch(dir.into())),
        [command, registry, root] if command == "plugins" => {
            runtime.block_on(plugins(registry.into(), root.into()))
        }
        [command, socket, namespace, name, uid]
            if command == "prepare" || command == "unprepare" =>
        {
            runtime.block_on(claim(
                command == "prepare",
                socket.into(),
                dra::Claim {
                    namespace: namespace.clone(),
                    uid: uid.clone(),
                    name: name.clone(),
                },
            ))
        }
        [command, socket, ids @ ..] if command == "allocate" && !ids.is_empty() => {
            runtime.block_on(allocate(socket.into(), ids.to_vec()))
        }
        _ => Err(
            "usage: fake-kubelet watch DIR | plugins REGISTRY ROOT | allocate SOCKET ID... \
             | prepare|unprepare SOCKET NAMESPACE NAME UID"
                .into(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-kubelet: {e}");
            ExitCode::FAILURE
        }
    }
}
