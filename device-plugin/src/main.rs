//! `sriov-device-plugin`: advertises SR-IOV VFs to kubelet as extended
//! resources. The command line is `sriov_device_plugin::cli`.

fn main() -> std::process::ExitCode {
    sriov_device_plugin::cli::main()
}
