//! `sriov`: the CNI plugin. The runtime runs it once per call with the
//! CNI_* environment and the network config on stdin; it answers on stdout.
//! Blocking and single-shot on purpose: no async runtime, nothing to start.

mod add;
mod check;
mod cni;
mod config;
mod context;
mod del;
mod gc;
mod go_cache;
mod host;
mod ipam;
mod log;
mod netdev;
mod release;
mod state;
mod status;
mod vf_config;

use std::io::Read;
use std::process::ExitCode;

use serde_json::{json, Value};

use cni::{version, Env, Error, Result};
use config::NetConf;
use context::Ctx;
use host::Host;
use log::Log;

/// The version an error is reported in: the one the caller asked for if
/// this plugin speaks it, else the latest.
fn reply_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| version::SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| version::LATEST.to_string())
}

/// The result to print, if the command has one.
fn run(stdin: &[u8]) -> Result<Option<Value>> {
    let env = Env::from_process()?;
    match env.command.as_str() {
        "VERSION" => return Ok(Some(version_answer(stdin))),
        "" => return Err(Error::Environment("CNI_COMMAND is not set".into())),
        "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" => {}
        other => {
            return Err(Error::Environment(format!(
                "CNI_COMMAND {other:?} is not a CNI command"
            )))
        }
    }
    // DEL must not be blocked by a config that no longer validates (an
    // edited NetworkAttachmentDefinition): it reads what it needs leniently.
    let (conf, invalid) = match NetConf::parse(stdin) {
        Ok(conf) => (conf, None),
        Err(e) if env.command == "DEL" => (NetConf::parse_for_del(stdin)?, Some(e)),
        Err(e) => return Err(e),
    };
    version::check(&conf.cni_version, &env.command)?;
    let log = Log::new(
        conf.log_level,
        conf.log_file.as_deref(),
        format!("{} {} {}", env.command, env.container_id, env.ifname),
    );
    if let Some(e) = invalid {
        log.warning(&format!(
            "the config does not validate ({e}); DEL goes on with what it needs"
        ));
    }
    let host = Host::new();
    let outcome = match env.command.as_str() {
        "STATUS" => status::status(&env, &conf, &host).map(|()| None),
        command => Ctx::new(&env, &conf, stdin, &host, &log).and_then(|mut ctx| match command {
            "ADD" => add::add(&mut ctx).map(Some),
            "DEL" => del::del(&mut ctx).map(|()| None),
            "CHECK" => check::check(&mut ctx).map(|()| None),
            _ => gc::gc(&mut ctx).map(|()| None),
        }),
    };
    if let Err(e) = &outcome {
        log.error(&e.to_string());
    }
    outcome
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
    let outcome = match read {
        Ok(_) => run(&stdin),
        Err(e) => Err(Error::Io(format!("read stdin: {e}"))),
    };
    match outcome {
        Ok(Some(value)) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let version = reply_version(&stdin);
            println!(
                "{}",
                json!({ "cniVersion": version, "code": e.code(), "msg": e.to_string(), "details": "" })
            );
            ExitCode::FAILURE
        }
    }
}
