//! Delegation to the IPAM plugin named in `ipam.type`, found in CNI_PATH and
//! given the same network config, as the CNI spec describes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::cni::Env;
use crate::{Error, Result};

/// The attachment an IPAM call is about; for GC these are a recorded
/// attachment's, not the GC call's own.
pub struct Call<'a> {
    pub plugin: &'a str,
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub cni_path: &'a str,
    pub config: &'a [u8],
}

impl<'a> Call<'a> {
    /// A call about the attachment this CNI call is about.
    pub fn for_env(plugin: &'a str, command: &'a str, env: &'a Env, config: &'a [u8]) -> Self {
        Call {
            plugin,
            command,
            container_id: &env.container_id,
            netns: &env.netns,
            ifname: &env.ifname,
            args: &env.args_text,
            cni_path: &env.path,
            config,
        }
    }
}

fn find(plugin: &str, cni_path: &str) -> Result<PathBuf> {
    cni_path
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| PathBuf::from(dir).join(plugin))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            Error::Ipam(format!(
                "ipam plugin {plugin:?} not found in CNI_PATH {cni_path:?}"
            ))
        })
}

/// Runs the plugin; for ADD returns its result.
pub fn run(call: &Call) -> Result<Option<Value>> {
    start(call)?.finish()
}

/// Starts the plugin without waiting, so that its run overlaps the
/// caller's netlink work; [`Running::finish`] collects the result. A
/// `Running` that is dropped unfinished still waits for the plugin, so
/// nothing (a rollback's DEL) can overtake it.
pub fn start<'a>(call: &'a Call<'a>) -> Result<Running<'a>> {
    let child = spawn(call, call.config)?;
    Ok(Running {
        call,
        child: Some(child),
    })
}

pub struct Running<'a> {
    call: &'a Call<'a>,
    child: Option<Child>,
}

impl Running<'_> {
    pub fn finish(mut self) -> Result<Option<Value>> {
        let Some(child) = self.child.take() else {
            return Ok(None);
        };
        match collect(self.call, child) {
            // An IPAM plugin older than CNI 1.1 refuses a 1.1.0 config;
            // 1.0.0 results carry the same fields.
            Err((Some(1), _)) if cni_version(self.call.config).as_deref() == Some("1.1.0") => {
                let mut config: Value = serde_json::from_slice(self.call.config)
                    .map_err(|e| Error::Decode(e.to_string()))?;
                config["cniVersion"] = "1.0.0".into();
                let config =
                    serde_json::to_vec(&config).map_err(|e| Error::Decode(e.to_string()))?;
                collect(self.call, spawn(self.call, &config)?).map_err(|(_, e)| e)
            }
            other => other.map_err(|(_, e)| e),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

fn cni_version(config: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(config).ok()?;
    value.get("cniVersion")?.as_str().map(str::to_string)
}

fn spawn(call: &Call, config: &[u8]) -> Result<Child> {
    let path = find(call.plugin, call.cni_path)?;
    let mut child = Command::new(&path)
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_ARGS", call.args)
        .env("CNI_PATH", call.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Ipam(format!(
                "ipam {} {}: run {}: {e}",
                call.plugin,
                call.command,
                path.display()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits without reading stdin is judged by its output.
        let _ = stdin.write_all(config);
    }
    Ok(child)
}

/// Waits for the plugin. On failure: its CNI error code, if it gave one,
/// and our error.
fn collect(call: &Call, child: Child) -> Result<Option<Value>, (Option<u64>, Error)> {
    let what = format!("ipam {} {}", call.plugin, call.command);
    let output = child
        .wait_with_output()
        .map_err(|e| (None, Error::Ipam(format!("{what}: {e}"))))?;
    let stdout: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    if !output.status.success() {
        let code = stdout
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_u64);
        let message = stdout
            .as_ref()
            .and_then(|v| v.get("msg"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&output.stderr).trim().to_string());
        return Err((code, Error::Ipam(format!("{what}: {message}"))));
    }
    match call.command {
        "ADD" => stdout.map(Some).ok_or_else(|| {
            (
                None,
                Error::Ipam(format!("{what}: the plugin printed no JSON result")),
            )
        }),
        _ => Ok(None),
    }
}
