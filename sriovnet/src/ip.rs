use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;

/// An address with its prefix length, as CNI results and IPAM plugins write
/// them (`10.1.2.3/24`, `2001:db8::5/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    pub address: IpAddr,
    pub prefix: u8,
}

impl IpNetwork {
    pub fn new(address: IpAddr, prefix: u8) -> Result<Self, Error> {
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::InvalidIpNetwork(format!("{address}/{prefix}")));
        }
        Ok(IpNetwork { address, prefix })
    }
}

impl FromStr for IpNetwork {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidIpNetwork(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let address = addr.parse().map_err(|_| bad())?;
        let prefix = prefix.parse().map_err(|_| bad())?;
        IpNetwork::new(address, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_families() {
        assert_eq!(
            "10.1.2.3/24".parse::<IpNetwork>().unwrap().to_string(),
            "10.1.2.3/24"
        );
        assert_eq!("2001:db8::5/64".parse::<IpNetwork>().unwrap().prefix, 64);
        for s in [
            "10.1.2.3",
            "10.1.2.3/33",
            "2001:db8::/129",
            "x/24",
            "10.1.2.3/-1",
        ] {
            assert!(s.parse::<IpNetwork>().is_err(), "{s}");
        }
    }
}
