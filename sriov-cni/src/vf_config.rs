//! The VF's settings on the PF side: what the config asks for, applying it,
//! and putting back what was there.

use sriovnet::{MacAddress, Netlink, VfSetting, VfState, VlanProto};

use crate::config::NetConf;
use crate::{Error, Result};

/// The PF-side settings the config asks for, by name, with their values.
pub fn requested(
    conf: &NetConf,
    mac: Option<MacAddress>,
    original: &VfState,
) -> Vec<(&'static str, VfSetting)> {
    let mut settings = Vec::new();
    if let Some(vlan) = conf.vlan {
        let qos = conf.vlan_qos.unwrap_or(0);
        let proto = conf.vlan_proto.unwrap_or(VlanProto::Dot1Q);
        settings.push(("vlan", VfSetting::Vlan { vlan, qos, proto }));
    }
    if let Some(mac) = mac {
        settings.push(("mac", VfSetting::Mac(mac)));
    }
    if let Some(on) = conf.spoof_check {
        settings.push(("spoofchk", VfSetting::SpoofCheck(on)));
    }
    if let Some(on) = conf.trust {
        settings.push(("trust", VfSetting::Trust(on)));
    }
    if conf.min_tx_rate.is_some() || conf.max_tx_rate.is_some() {
        let min = conf.min_tx_rate.unwrap_or(original.min_tx_rate);
        let max = conf.max_tx_rate.unwrap_or(original.max_tx_rate);
        settings.push(("rate", VfSetting::Rate { min, max }));
    }
    if let Some(state) = conf.link_state {
        settings.push(("link_state", VfSetting::LinkState(state)));
    }
    settings
}

/// The original value of a setting ADD changed.
pub fn original(name: &str, state: &VfState) -> Option<VfSetting> {
    Some(match name {
        "vlan" => VfSetting::Vlan {
            vlan: state.vlan,
            qos: state.qos,
            proto: state.vlan_proto,
        },
        "mac" => VfSetting::Mac(state.mac),
        "spoofchk" => VfSetting::SpoofCheck(state.spoof_check),
        "trust" => VfSetting::Trust(state.trust),
        "rate" => VfSetting::Rate {
            min: state.min_tx_rate,
            max: state.max_tx_rate,
        },
        "link_state" => VfSetting::LinkState(state.link_state),
        _ => return None,
    })
}

/// Whether `state` already has `setting`.
pub fn holds(state: &VfState, setting: &VfSetting) -> bool {
    match *setting {
        VfSetting::Vlan { vlan, qos, proto } => {
            state.vlan == vlan && (vlan == 0 || (state.qos == qos && state.vlan_proto == proto))
        }
        VfSetting::Mac(mac) => state.mac == mac,
        VfSetting::SpoofCheck(on) => state.spoof_check == on,
        VfSetting::Trust(on) => state.trust == on,
        VfSetting::Rate { min, max } => (state.min_tx_rate, state.max_tx_rate) == (min, max),
        VfSetting::LinkState(link_state) => state.link_state == link_state,
    }
}

/// Applies one setting; a driver's refusal names the setting and the
/// driver, and for the rate, which of the two limits were asked.
pub fn apply(
    netlink: &mut Netlink,
    pf: &str,
    vf: u32,
    setting: VfSetting,
    driver: &str,
) -> Result<()> {
    netlink.set_vf(pf, vf, setting).map_err(|e| {
        Error::VfSetting(match setting {
            VfSetting::Rate { .. } => format!("{e} ({setting}; PF driver {driver})"),
            _ => format!("{e} (PF driver {driver})"),
        })
    })
}
