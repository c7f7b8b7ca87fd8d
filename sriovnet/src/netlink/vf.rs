//! Per-VF settings, read and written through the PF.

use std::fmt;
use std::str::FromStr;

use netlink_packet_route::link::{
    self as nl, LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo, VfVlan, VfVlanInfo,
    VlanProtocol,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::{get_link_by_name, single_link};
use super::socket::{Failure, Netlink};
use crate::{Error, MacAddress, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VlanProto {
    #[default]
    Dot1Q,
    Dot1Ad,
}

impl FromStr for VlanProto {
    type Err = String;

    /// The CNI config spelling, `802.1q` or `802.1ad`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(VlanProto::Dot1Q),
            "802.1ad" => Ok(VlanProto::Dot1Ad),
            _ => Err(format!("{s:?} is not 802.1q or 802.1ad")),
        }
    }
}

impl fmt::Display for VlanProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VlanProto::Dot1Q => "802.1q",
            VlanProto::Dot1Ad => "802.1ad",
        })
    }
}

/// The VF's administrative link state as the PF forces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VfLinkState {
    /// Follows the PF's link.
    #[default]
    Auto,
    Enable,
    Disable,
}

impl FromStr for VfLinkState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(VfLinkState::Auto),
            "enable" => Ok(VfLinkState::Enable),
            "disable" => Ok(VfLinkState::Disable),
            _ => Err(format!("{s:?} is not auto, enable or disable")),
        }
    }
}

impl fmt::Display for VfLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VfLinkState::Auto => "auto",
            VfLinkState::Enable => "enable",
            VfLinkState::Disable => "disable",
        })
    }
}

/// One VF's settings as its PF reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VfState {
    pub index: u32,
    pub mac: MacAddress,
    pub vlan: u16,
    pub qos: u8,
    pub vlan_proto: VlanProto,
    /// A driver that does not report spoof check or trust reads as off.
    pub spoof_check: bool,
    pub trust: bool,
    pub link_state: VfLinkState,
    /// Mbps; 0 is no limit.
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
}

/// One change to a VF, made through its PF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfSetting {
    Mac(MacAddress),
    /// VLAN 0 removes the tag; QoS is the 802.1p priority (0-7).
    Vlan {
        vlan: u16,
        qos: u8,
        proto: VlanProto,
    },
    SpoofCheck(bool),
    Trust(bool),
    LinkState(VfLinkState),
    /// Mbps; the kernel sets both limits at once.
    Rate {
        min: u32,
        max: u32,
    },
}

/// The setting as `ip link` would take it: `vlan 10 qos 3 proto 802.1q`,
/// `mac 02:00:00:00:00:01`, `min_tx_rate 0 max_tx_rate 100`.
impl fmt::Display for VfSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on_off = |on: bool| if on { "on" } else { "off" };
        match self {
            VfSetting::Mac(mac) => write!(f, "mac {mac}"),
            VfSetting::Vlan { vlan, qos, proto } => {
                write!(f, "vlan {vlan} qos {qos} proto {proto}")
            }
            VfSetting::SpoofCheck(on) => write!(f, "spoofchk {}", on_off(*on)),
            VfSetting::Trust(on) => write!(f, "trust {}", on_off(*on)),
            VfSetting::LinkState(state) => write!(f, "link_state {state}"),
            VfSetting::Rate { min, max } => write!(f, "min_tx_rate {min} max_tx_rate {max}"),
        }
    }
}

/// The whole PF view of a VF, in the same words as [`VfSetting`].
impl fmt::Display for VfState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on_off = |on: bool| if on { "on" } else { "off" };
        write!(
            f,
            "mac {} vlan {} qos {} proto {} spoofchk {} trust {} link_state {} min_tx_rate {} max_tx_rate {}",
            self.mac,
            self.vlan,
            self.qos,
            self.vlan_proto,
            on_off(self.spoof_check),
            on_off(self.trust),
            self.link_state,
            self.min_tx_rate,
            self.max_tx_rate
        )
    }
}

impl VfSetting {
    /// What the setting is called in errors: `set link_state on eth0 vf 2: ...`.
    pub fn op(&self) -> &'static str {
        match self {
            VfSetting::Mac(_) => "set mac",
            VfSetting::Vlan { .. } => "set vlan",
            VfSetting::SpoofCheck(_) => "set spoofchk",
            VfSetting::Trust(_) => "set trust",
            VfSetting::LinkState(_) => "set link_state",
            VfSetting::Rate { .. } => "set rate",
        }
    }

    fn to_attribute(self, vf: u32) -> VfInfo {
        match self {
            VfSetting::Mac(mac) => VfInfo::Mac(nl::VfInfoMac::new(vf, &mac.0)),
            // The VLAN list form is the only one that carries the protocol.
            VfSetting::Vlan { vlan, qos, proto } => {
                VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                    vf,
                    vlan.into(),
                    qos.into(),
                    match proto {
                        VlanProto::Dot1Q => VlanProtocol::Ieee8021Q,
                        VlanProto::Dot1Ad => VlanProtocol::Ieee8021Ad,
                    },
                ))])
            }
            VfSetting::SpoofCheck(on) => VfInfo::SpoofCheck(nl::VfInfoSpoofCheck::new(vf, on)),
            VfSetting::Trust(on) => VfInfo::Trust(nl::VfInfoTrust::new(vf, on)),
            VfSetting::LinkState(state) => VfInfo::LinkState(nl::VfInfoLinkState::new(
                vf,
                match state {
                    VfLinkState::Auto => nl::VfLinkState::Auto,
                    VfLinkState::Enable => nl::VfLinkState::Enable,
                    VfLinkState::Disable => nl::VfLinkState::Disable,
                },
            )),
            VfSetting::Rate { min, max } => VfInfo::Rate(nl::VfInfoRate::new(vf, min, max)),
        }
    }
}

/// The SETLINK request that applies `setting` to VF `vf` of the PF named `pf`.
fn set_vf_request(pf: &str, vf: u32, setting: VfSetting) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(pf.to_string()));
    message
        .attributes
        .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![
            setting.to_attribute(vf)
        ])]));
    RouteNetlinkMessage::SetLink(message)
}

/// Every VF in a PF's GETLINK reply.
fn vf_states_of(message: &LinkMessage) -> Vec<VfState> {
    let mut states = Vec::new();
    for attribute in &message.attributes {
        if let LinkAttribute::VfInfoList(list) = attribute {
            states.extend(list.iter().map(vf_state_of));
        }
    }
    states
}

fn vf_state_of(info: &LinkVfInfo) -> VfState {
    let mut state = VfState::default();
    let mut from_list = false;
    for attribute in &info.0 {
        match attribute {
            VfInfo::Mac(m) => {
                state.index = m.vf_id;
                state.mac = MacAddress::from_bytes(&m.mac).unwrap_or_default();
            }
            VfInfo::Vlan(v) if !from_list => {
                (state.vlan, state.qos) = (v.vlan_id as u16, v.qos as u8);
            }
            VfInfo::VlanList(list) => {
                if let Some(VfVlan::Info(v)) = list.first() {
                    from_list = true;
                    (state.vlan, state.qos) = (v.vlan_id as u16, v.qos as u8);
                    state.vlan_proto = match v.protocol {
                        VlanProtocol::Ieee8021Ad => VlanProto::Dot1Ad,
                        _ => VlanProto::Dot1Q,
                    };
                }
            }
            VfInfo::SpoofCheck(s) => state.spoof_check = s.enabled,
            VfInfo::Trust(t) => state.trust = t.enabled,
            VfInfo::LinkState(l) => {
                state.link_state = match l.state {
                    nl::VfLinkState::Enable => VfLinkState::Enable,
                    nl::VfLinkState::Disable => VfLinkState::Disable,
                    _ => VfLinkState::Auto,
                }
            }
            VfInfo::Rate(r) => {
                (state.min_tx_rate, state.max_tx_rate) = (r.min_tx_rate, r.max_tx_rate)
            }
            _ => {}
        }
    }
    state
}

impl Netlink {
    /// The settings of every VF of the PF named `pf`, from a GETLINK of that
    /// PF alone with stats skipped, so a PF with 256 VFs fits one reply.
    pub fn vf_states(&mut self, pf: &str) -> Result<Vec<VfState>> {
        let replies = self
            .get(get_link_by_name(pf, &[LinkExtentMask::Vf]))
            .map_err(|f| f.into_error("read vfs of", pf))?;
        Ok(vf_states_of(&single_link(replies, "read vfs of", pf)?))
    }

    pub fn vf_state(&mut self, pf: &str, vf: u32) -> Result<VfState> {
        self.vf_states(pf)?
            .into_iter()
            .find(|state| state.index == vf)
            .ok_or_else(|| Error::NoSuchVf {
                pf: pf.to_string(),
                vf,
            })
    }

    /// Applies one setting to VF `vf` of the PF named `pf`.
    pub fn set_vf(&mut self, pf: &str, vf: u32, setting: VfSetting) -> Result<()> {
        self.change(set_vf_request(pf, vf, setting), 0)
            .map_err(|failure| match failure {
                Failure::Kernel(errno) => Error::Vf {
                    op: setting.op(),
                    pf: pf.to_string(),
                    vf,
                    errno,
                },
                other => other.into_error(setting.op(), format!("{pf} vf {vf}")),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

    /// Emits a request as bytes and parses them back as the kernel would
    /// see them, then reads the VF fields with the same code that reads the
    /// kernel's replies.
    fn round_trip(setting: VfSetting) -> (Vec<u8>, VfState) {
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(set_vf_request("ens1f0", 5, setting)),
        );
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(message)) = parsed.payload
        else {
            panic!("not a SETLINK: {:?}", parsed.payload);
        };
        assert!(message
            .attributes
            .contains(&LinkAttribute::IfName("ens1f0".into())));
        let mut states = vf_states_of(&message);
        assert_eq!(states.len(), 1);
        (bytes, states.remove(0))
    }

    #[test]
    fn every_setting_round_trips() {
        let mac: MacAddress = "02:11:22:33:44:55".parse().unwrap();
        let (_, s) = round_trip(VfSetting::Mac(mac));
        assert_eq!((s.index, s.mac), (5, mac));

        let (_, s) = round_trip(VfSetting::Vlan {
            vlan: 4094,
            qos: 7,
            proto: VlanProto::Dot1Ad,
        });
        assert_eq!((s.vlan, s.qos, s.vlan_proto), (4094, 7, VlanProto::Dot1Ad));

        let (_, s) = round_trip(VfSetting::SpoofCheck(true));
        assert!(s.spoof_check);
        let (_, s) = round_trip(VfSetting::Trust(true));
        assert!(s.trust);
        let (_, s) = round_trip(VfSetting::LinkState(VfLinkState::Disable));
        assert_eq!(s.link_state, VfLinkState::Disable);
        let (_, s) = round_trip(VfSetting::Rate {
            min: 100,
            max: 2500,
        });
        assert_eq!((s.min_tx_rate, s.max_tx_rate), (100, 2500));
    }

    #[test]
    fn vlan_is_sent_as_a_vlan_list_with_the_protocol_in_network_order() {
        let (bytes, _) = round_trip(VfSetting::Vlan {
            vlan: 100,
            qos: 3,
            proto: VlanProto::Dot1Ad,
        });
        // struct ifla_vf_vlan_info { u32 vf; u32 vlan; u32 qos; __be16 proto; }
        let info: Vec<u8> = [5u32, 100, 3]
            .iter()
            .flat_map(|n| n.to_ne_bytes())
            .chain(0x88a8u16.to_be_bytes())
            .collect();
        assert!(bytes.windows(info.len()).any(|w| w == info), "{bytes:02x?}");
        // IFLA_VFINFO_LIST (22) > IFLA_VF_INFO (1) > IFLA_VF_VLAN_LIST (12) > IFLA_VF_VLAN_INFO (1)
        let kinds = [22u16, 1, 12, 1];
        let mut at = 32; // netlink header (16) + ifinfomsg (16)
        let mut seen = Vec::new();
        while at + 4 <= bytes.len() && seen.len() < kinds.len() {
            let len = u16::from_ne_bytes([bytes[at], bytes[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([bytes[at + 2], bytes[at + 3]]) & 0x3fff;
            if kind == kinds[seen.len()] {
                seen.push(kind);
                at += 4; // descend into the nested attribute
            } else {
                at += len.next_multiple_of(4);
            }
        }
        assert_eq!(seen, kinds);
    }

    #[test]
    fn vf_link_state_and_vlan_proto_parse_config_spellings() {
        assert_eq!("802.1AD".parse::<VlanProto>().unwrap(), VlanProto::Dot1Ad);
        assert!("802.1x"
            .parse::<VlanProto>()
            .unwrap_err()
            .contains("802.1x"));
        assert_eq!(
            "enable".parse::<VfLinkState>().unwrap(),
            VfLinkState::Enable
        );
        assert!("on".parse::<VfLinkState>().is_err());
    }
}
