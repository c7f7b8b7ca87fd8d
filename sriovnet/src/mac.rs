use std::fmt;
use std::str::FromStr;

use crate::Error;

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The first six bytes of a netlink hardware address, if it has six.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.get(..6)?.try_into().ok().map(MacAddress)
    }
}

impl FromStr for MacAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            Some(_) => Err(bad()),
            None => Ok(MacAddress(out)),
        }
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lower_case() {
        let mac: MacAddress = "02:AB:cd:00:11:FF".parse().unwrap();
        assert_eq!(mac.to_string(), "02:ab:cd:00:11:ff");
        assert_eq!(
            MacAddress::from_bytes(&[2, 0, 0, 0, 0, 1, 9, 9])
                .unwrap()
                .to_string(),
            "02:00:00:00:00:01"
        );
        assert!(MacAddress::from_bytes(&[1, 2]).is_none());
    }

    #[test]
    fn refuses_malformed() {
        for s in [
            "",
            "02:ab:cd:00:11",
            "02:ab:cd:00:11:ff:00",
            "02-ab-cd-00-11-ff",
            "2:ab:cd:00:11:ff",
            "0g:ab:cd:00:11:ff",
        ] {
            assert!(s.parse::<MacAddress>().is_err(), "{s}");
        }
    }
}
