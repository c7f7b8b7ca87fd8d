//! `sriov`: the CNI plugin. The runtime runs it once per call with the
//! CNI_* environment and the network config on stdin; it answers on stdout.
//! Blocking and single-shot on purpose: no async runtime, nothing to start.

mod add;
mod check;
mod config;
mod del;
mod env;
mod error;
mod gc;
mod host;
mod ipam;
mod log;
mod netdev;
mod release;
mod result;
mod state;
mod status;
mod version;
mod vf_config;

use std::io::Read;
use std::process::ExitCode;

use serde_json::{json, Value};

use config::NetConf;
use env::Env;
use error::{Error, Result};
use host::Host;
use log::Log;

/// The result to print, if the command has one.
fn run(stdin: &[u8]) -> (String, Result<Option<Value>>) {
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(e) => return (version::LATEST.into(), Err(e)),
    };
    if env.command == "VERSION" {
        return (version::LATEST.into(), Ok(Some(version_answer(stdin))));
    }
    let conf = match NetConf::parse(stdin) {
        Ok(conf) => conf,
        Err(e) => return (version::LATEST.into(), Err(e)),
    };
    let cni_version = conf.cni_version.clone();
    if let Err(e) = version::check(&conf.cni_version, &env.command) {
        return (version::LATEST.into(), Err(e));
    }
    let log = Log::new(
        conf.log_level,
        conf.log_file.as_deref(),
        format!("{} {} {}", env.command, env.container_id, env.ifname),
    );
    let host = Host::new();
    let outcome = match env.command.as_str() {
        "ADD" => add::add(&env, &conf, stdin, &host, &log).map(Some),
        "DEL" => del::del(&env, &conf, stdin, &host, &log).map(|()| None),
        "CHECK" => check::check(&env, &conf, &host).map(|()| None),
        "GC" => gc::gc(&conf, &host, &log).map(|()| None),
        "STATUS" => status::status(&env, &conf, &host).map(|()| None),
        "" => Err(Error::Environment("CNI_COMMAND is not set".into())),
        other => Err(Error::Environment(format!(
            "CNI_COMMAND {other:?} is not a CNI command"
        ))),
    };
    if let Err(e) = &outcome {
        log.error(&e.to_string());
    }
    (cni_version, outcome)
}

/// VERSION answers in the version the caller asked for, if given.
fn version_answer(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| version::SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| version::LATEST.to_string());
    json!({ "cniVersion": asked, "supportedVersions": version::SUPPORTED })
}

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let (cni_version, outcome) = match read {
        Ok(_) => run(&stdin),
        Err(e) => (
            version::LATEST.into(),
            Err(Error::Io(format!("read stdin: {e}"))),
        ),
    };
    match outcome {
        Ok(Some(value)) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let version = if cni_version.is_empty() {
                version::LATEST.to_string()
            } else {
                cni_version
            };
            println!(
                "{}",
                json!({ "cniVersion": version, "code": e.code(), "msg": e.to_string(), "details": "" })
            );
            ExitCode::FAILURE
        }
    }
}
