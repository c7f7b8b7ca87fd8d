//! Compiles the kubelet API definitions with protox (pure Rust), so no
//! `protoc` is needed on the build machine.

const FILES: [&str; 6] = [
    "proto/deviceplugin/v1beta1/api.proto",
    "proto/podresources/v1/api.proto",
    "proto/pluginregistration/v1/api.proto",
    "proto/dra/v1/api.proto",
    "proto/dra/v1beta1/api.proto",
    "proto/drahealth/v1alpha1/api.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(FILES, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
