//! Property tests of every value parser on the command line: any string is
//! an answer or an error, never a panic, and well-formed input reads as
//! what was meant.

use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;

use crate::bpf::{parse_cidr, parse_proto};

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..Default::default() })]

    #[test]
    fn any_string_is_an_answer_or_an_error(s in ".{0,40}") {
        let _ = crate::monitor::parse_duration(&s);
        let _ = crate::prog::parse_window(&s);
        let _ = parse_cidr(&s);
        let _ = parse_proto(&s);
        let _ = crate::bpf::endpoint::parse_mac(&s);
        let _ = crate::bpf::policy::parse_identity(&s);
        let _ = crate::datapath::parse_setting(&s);
        let _ = crate::datapath::parse_map_size(&s);
        let _ = dpdbg::maps::any::MapSpec::parse(&s);
        let _ = dpdbg::maps::any::parse_hex(&s);
    }

    #[test]
    fn numbers_and_units_read_as_meant(n in 0u64..100_000, unit in prop::sample::select(vec!["ms", "s", "m", "h"])) {
        let d = crate::monitor::parse_duration(&format!("{n}{unit}"));
        let want = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            _ => Duration::from_secs(n * 3600),
        };
        if want <= Duration::from_secs(366 * 24 * 3600) {
            prop_assert_eq!(d, Ok(want));
        } else {
            prop_assert!(d.is_err());
        }
    }

    #[test]
    fn windows_are_bounded(x in proptest::num::f64::ANY) {
        match crate::prog::parse_window(&x.to_string()) {
            Ok(d) => prop_assert!((0.001..=3600.0).contains(&x) && d >= Duration::from_millis(1)),
            Err(_) => prop_assert!(!(0.001..=3600.0).contains(&x)),
        }
    }

    #[test]
    fn cidrs_round_trip(a in any::<[u8; 16]>(), v6 in any::<bool>(), len in 0u8..=128) {
        let ip = if v6 { IpAddr::from(a) } else { IpAddr::from([a[0], a[1], a[2], a[3]]) };
        let len = if v6 { len } else { len % 33 };
        let net = dpdbg::maps::network(ip, len);
        prop_assert_eq!(parse_cidr(&format!("{net}/{len}")), Ok((net, len)));
        if net != ip {
            let e = parse_cidr(&format!("{ip}/{len}")).unwrap_err();
            prop_assert!(e.contains("host bits"), "{}", e);
        }
    }

    #[test]
    fn macs_round_trip(m in any::<[u8; 6]>()) {
        let s = m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        prop_assert_eq!(crate::bpf::endpoint::parse_mac(&s), Ok(m));
    }

    #[test]
    fn protocols_and_identities(n in any::<u8>(), id in any::<u32>()) {
        prop_assert_eq!(parse_proto(&n.to_string()), Ok(n));
        prop_assert_eq!(crate::bpf::policy::parse_identity(&id.to_string()), Ok(id));
    }
}
