use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A PCI address in the kernel's sysfs form, `DDDD:BB:DD.F`.
///
/// Parsing is strict on purpose: addresses from configs are joined into sysfs
/// paths, so anything that is not exactly an address (`..`, `/`) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidPciAddress(s.to_string());
        let (domain, rest) = s.split_once(':').ok_or_else(bad)?;
        let (bus, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (device, function) = rest.split_once('.').ok_or_else(bad)?;
        let hex = |field: &str, len: std::ops::RangeInclusive<usize>| {
            if len.contains(&field.len()) && field.bytes().all(|b| b.is_ascii_hexdigit()) {
                u32::from_str_radix(field, 16).map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let (domain, bus) = (hex(domain, 4..=8)?, hex(bus, 2..=2)?);
        let (device, function) = (hex(device, 2..=2)?, hex(function, 1..=1)?);
        if device > 0x1f || function > 7 {
            return Err(bad());
        }
        Ok(PciAddress {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_sysfs_form() {
        for s in ["0000:01:10.0", "0000:af:1f.7", "10000:00:02.1"] {
            assert_eq!(s.parse::<PciAddress>().unwrap().to_string(), s);
        }
        let a: PciAddress = "0000:86:00.1".parse().unwrap();
        assert_eq!((a.domain, a.bus, a.device, a.function), (0, 0x86, 0, 1));
    }

    #[test]
    fn refuses_anything_else() {
        for s in [
            "",
            "01:10.0",
            "0000:01:10",
            "0000:01:20.0",
            "0000:01:10.8",
            "0000:1:10.0",
            "../../../etc",
            "0000:01:10.0/..",
            "0000:01:10.0 ",
            "zzzz:01:10.0",
            "+000:01:10.0",
        ] {
            let err = s.parse::<PciAddress>().unwrap_err();
            assert!(
                err.to_string().contains("is not a PCI address"),
                "{s}: {err}"
            );
        }
    }
}
