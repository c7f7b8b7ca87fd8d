//! Exact bytes of representative messages, worked out by hand from the
//! upstream field numbers and types: a wrong number or type fails here.

use kubelet_api::deviceplugin::v1beta1 as dp;
use kubelet_api::pluginregistration::v1 as reg;
use kubelet_api::podresources::v1 as pr;
use prost::Message;

/// A length-delimited field: tag (number << 3 | 2), length, bytes.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// A varint field with a value below 128.
fn varint(number: u8, value: u8) -> Vec<u8> {
    vec![number << 3, value]
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn register_request() {
    let message = dp::RegisterRequest {
        version: "v1beta1".into(),
        endpoint: "x.sock".into(),
        resource_name: "intel.com/sriov".into(),
        options: Some(dp::DevicePluginOptions {
            pre_start_required: true,
            get_preferred_allocation_available: true,
        }),
    };
    let expected = cat(&[
        field(1, b"v1beta1"),
        field(2, b"x.sock"),
        field(3, b"intel.com/sriov"),
        field(4, &cat(&[varint(1, 1), varint(2, 1)])),
    ]);
    assert_eq!(message.encode_to_vec(), expected);
}

#[test]
fn device_with_topology() {
    let message = dp::ListAndWatchResponse {
        devices: vec![dp::Device {
            id: "0000:01:10.0".into(),
            health: dp::HEALTHY.into(),
            topology: Some(dp::TopologyInfo {
                nodes: vec![dp::NumaNode { id: 1 }],
            }),
        }],
    };
    let device = cat(&[
        field(1, b"0000:01:10.0"),
        field(2, b"Healthy"),
        field(3, &field(1, &varint(1, 1))),
    ]);
    assert_eq!(message.encode_to_vec(), field(1, &device));
}

#[test]
fn preferred_allocation() {
    let message = dp::ContainerPreferredAllocationRequest {
        available_device_i_ds: vec!["a".into(), "b".into()],
        must_include_device_i_ds: vec!["a".into()],
        allocation_size: 2,
    };
    let expected = cat(&[field(1, b"a"), field(1, b"b"), field(2, b"a"), varint(3, 2)]);
    assert_eq!(message.encode_to_vec(), expected);
    let response = dp::ContainerPreferredAllocationResponse {
        device_i_ds: vec!["b".into()],
    };
    assert_eq!(response.encode_to_vec(), field(1, b"b"));
}

#[test]
fn container_allocate_response() {
    let message = dp::ContainerAllocateResponse {
        envs: [("K".to_string(), "V".to_string())].into(),
        mounts: vec![dp::Mount {
            container_path: "/c".into(),
            host_path: "/h".into(),
            read_only: true,
        }],
        devices: vec![dp::DeviceSpec {
            container_path: "/dev/vfio/5".into(),
            host_path: "/dev/vfio/5".into(),
            permissions: "rw".into(),
        }],
        annotations: [("A".to_string(), "B".to_string())].into(),
        cdi_devices: vec![dp::CdiDevice {
            name: "intel.com/net=x".into(),
        }],
    };
    let expected = cat(&[
        field(1, &cat(&[field(1, b"K"), field(2, b"V")])),
        field(2, &cat(&[field(1, b"/c"), field(2, b"/h"), varint(3, 1)])),
        field(
            3,
            &cat(&[
                field(1, b"/dev/vfio/5"),
                field(2, b"/dev/vfio/5"),
                field(3, b"rw"),
            ]),
        ),
        field(4, &cat(&[field(1, b"A"), field(2, b"B")])),
        field(5, &field(1, b"intel.com/net=x")),
    ]);
    assert_eq!(message.encode_to_vec(), expected);
    let request = dp::AllocateRequest {
        container_requests: vec![dp::ContainerAllocateRequest {
            devices_ids: vec!["d".into()],
        }],
    };
    assert_eq!(request.encode_to_vec(), field(1, &field(1, b"d")));
}

#[test]
fn pod_resources() {
    let message = pr::ContainerResources {
        name: "c".into(),
        devices: vec![pr::ContainerDevices {
            resource_name: "r".into(),
            device_ids: vec!["d".into()],
            topology: Some(pr::TopologyInfo {
                nodes: vec![pr::NumaNode { id: 0 }],
            }),
        }],
        cpu_ids: vec![3],
        memory: vec![pr::ContainerMemory {
            memory_type: "m".into(),
            size: 5,
            topology: None,
        }],
        dynamic_resources: vec![pr::DynamicResource {
            claim_name: "n".into(),
            claim_namespace: "ns".into(),
            claim_resources: vec![pr::ClaimResource {
                cdi_devices: vec![pr::CdiDevice { name: "x".into() }],
                driver_name: "dr".into(),
                pool_name: "p".into(),
                device_name: "dv".into(),
            }],
        }],
    };
    let expected = cat(&[
        field(1, b"c"),
        field(
            2,
            &cat(&[field(1, b"r"), field(2, b"d"), field(3, &field(1, &[]))]),
        ),
        field(3, &[3]), // packed repeated int64
        field(4, &cat(&[field(1, b"m"), varint(2, 5)])),
        field(
            5,
            &cat(&[
                field(2, b"n"),
                field(3, b"ns"),
                field(
                    4,
                    &cat(&[
                        field(1, &field(1, b"x")),
                        field(2, b"dr"),
                        field(3, b"p"),
                        field(4, b"dv"),
                    ]),
                ),
            ]),
        ),
    ]);
    assert_eq!(message.encode_to_vec(), expected);
    let get = pr::GetPodResourcesRequest {
        pod_name: "p".into(),
        pod_namespace: "n".into(),
    };
    assert_eq!(get.encode_to_vec(), cat(&[field(1, b"p"), field(2, b"n")]));
}

#[test]
fn plugin_registration() {
    let info = reg::PluginInfo {
        r#type: reg::DEVICE_PLUGIN.into(),
        name: "intel.com/sriov".into(),
        endpoint: "/e.sock".into(),
        supported_versions: vec!["v1beta1".into()],
    };
    let expected = cat(&[
        field(1, b"DevicePlugin"),
        field(2, b"intel.com/sriov"),
        field(3, b"/e.sock"),
        field(4, b"v1beta1"),
    ]);
    assert_eq!(info.encode_to_vec(), expected);
    let status = reg::RegistrationStatus {
        plugin_registered: true,
        error: "e".into(),
    };
    assert_eq!(status.encode_to_vec(), cat(&[varint(1, 1), field(2, b"e")]));
}

#[test]
fn dra_prepare_response() {
    use kubelet_api::dra::v1 as dra;
    let device = dra::Device {
        request_names: vec!["vf".into()],
        pool_name: "node1".into(),
        device_name: "0000-01-10-0".into(),
        cdi_device_ids: vec!["k8s.io/net=c".into()],
    };
    let message = dra::NodePrepareResourcesResponse {
        claims: [(
            "uid1".to_string(),
            dra::NodePrepareResourceResponse {
                devices: vec![device],
                error: String::new(),
            },
        )]
        .into(),
    };
    let device_bytes = cat(&[
        field(1, b"vf"),
        field(2, b"node1"),
        field(3, b"0000-01-10-0"),
        field(4, b"k8s.io/net=c"),
    ]);
    // A map entry is a message: key 1, value 2.
    let entry = cat(&[field(1, b"uid1"), field(2, &field(1, &device_bytes))]);
    assert_eq!(message.encode_to_vec(), field(1, &entry));
    // v1beta1 has the same messages under its own package.
    let beta = kubelet_api::dra::v1beta1::NodePrepareResourcesResponse::decode(
        &message.encode_to_vec()[..],
    )
    .unwrap();
    assert_eq!(beta.claims["uid1"].devices[0].device_name, "0000-01-10-0");
}

#[test]
fn dra_claim_and_unprepare() {
    use kubelet_api::dra::v1 as dra;
    let request = dra::NodeUnprepareResourcesRequest {
        claims: vec![dra::Claim {
            namespace: "ns".into(),
            uid: "u".into(),
            name: "c".into(),
        }],
    };
    let claim = cat(&[field(1, b"ns"), field(2, b"u"), field(3, b"c")]);
    assert_eq!(request.encode_to_vec(), field(1, &claim));
    let response = dra::NodeUnprepareResourcesResponse {
        claims: [(
            "u".to_string(),
            dra::NodeUnprepareResourceResponse { error: "no".into() },
        )]
        .into(),
    };
    let entry = cat(&[field(1, b"u"), field(2, &field(1, b"no"))]);
    assert_eq!(response.encode_to_vec(), field(1, &entry));
}

#[test]
fn dra_device_health() {
    use kubelet_api::drahealth::v1alpha1 as health;
    let message = health::NodeWatchResourcesResponse {
        devices: vec![health::DeviceHealth {
            device: Some(health::DeviceIdentifier {
                pool_name: "n".into(),
                device_name: "d".into(),
            }),
            health: health::HealthStatus::Unhealthy as i32,
            last_updated_time: 100,
        }],
    };
    let device_health = cat(&[
        field(1, &cat(&[field(1, b"n"), field(2, b"d")])),
        varint(2, 2),
        varint(3, 100),
    ]);
    assert_eq!(message.encode_to_vec(), field(1, &device_health));
}
