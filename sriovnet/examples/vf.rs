//! Reads and sets VF settings through a PF, as `ip link set <pf> vf N ...`
//! does, with sriovnet's netlink layer.
//!
//!   vf PF                                  print every VF's state
//!   vf PF N mac 02:00:00:00:00:01          set one setting, then print VF N
//!   vf PF N vlan 100 qos 3 proto 802.1q
//!   vf PF N spoofchk on|off
//!   vf PF N trust on|off
//!   vf PF N state auto|enable|disable
//!   vf PF N rate MIN MAX                   Mbps

use std::process::ExitCode;

use sriovnet::{Netlink, VfSetting, VfState};

fn print(state: &VfState) {
    println!(
        "vf {} mac {} vlan {} qos {} proto {} spoofchk {} trust {} state {} min_tx_rate {} max_tx_rate {}",
        state.index,
        state.mac,
        state.vlan,
        state.qos,
        state.vlan_proto,
        on_off(state.spoof_check),
        on_off(state.trust),
        state.link_state,
        state.min_tx_rate,
        state.max_tx_rate
    );
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn parse_on_off(word: &str) -> Result<bool, String> {
    match word {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{word:?} is not on or off")),
    }
}

fn number<T: std::str::FromStr>(word: &str) -> Result<T, String> {
    word.parse()
        .map_err(|_| format!("{word:?} is not a number in range"))
}

fn parse_setting(words: &[&str]) -> Result<VfSetting, String> {
    match words {
        ["mac", mac] => Ok(VfSetting::Mac(mac.parse().map_err(|e| format!("{e}"))?)),
        ["vlan", vlan, "qos", qos, "proto", proto] => Ok(VfSetting::Vlan {
            vlan: number(vlan)?,
            qos: number(qos)?,
            proto: proto.parse()?,
        }),
        ["spoofchk", on] => Ok(VfSetting::SpoofCheck(parse_on_off(on)?)),
        ["trust", on] => Ok(VfSetting::Trust(parse_on_off(on)?)),
        ["state", state] => Ok(VfSetting::LinkState(state.parse()?)),
        ["rate", min, max] => Ok(VfSetting::Rate {
            min: number(min)?,
            max: number(max)?,
        }),
        _ => Err(format!("unknown setting {words:?}")),
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let mut netlink = Netlink::open().map_err(|e| e.to_string())?;
    match args {
        [pf] => {
            for state in netlink.vf_states(pf).map_err(|e| e.to_string())? {
                print(&state);
            }
        }
        [pf, vf, setting @ ..] => {
            let vf = number(vf)?;
            let setting = parse_setting(setting)?;
            netlink.set_vf(pf, vf, setting).map_err(|e| e.to_string())?;
            print(&netlink.vf_state(pf, vf).map_err(|e| e.to_string())?);
        }
        _ => return Err("usage: vf PF [N SETTING...]".into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vf: {message}");
            ExitCode::FAILURE
        }
    }
}
