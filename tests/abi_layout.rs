//! The one ABI truth: every Rust mirror matches the struct of the same name
//! in the compiled object's BTF, field by field.

use dpdbg::abi::{self, LAYOUTS};
use dpdbg::btf::{Btf, Type};

fn object_btf() -> Btf {
    Btf::from_elf(dpdbg::DATAPATH_OBJECT, "datapath.o").expect("the datapath object carries BTF")
}

#[test]
fn every_mirror_matches_the_object_btf() {
    let btf = object_btf();
    let mut checked = 0;
    for l in LAYOUTS {
        let (_, size, members) =
            btf.find_struct(l.c_name).unwrap_or_else(|| panic!("struct {} is not in the object's BTF", l.c_name));
        assert_eq!(size as usize, l.size, "size of struct {}", l.c_name);
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let ours: Vec<&str> = l.fields.iter().map(|(f, _)| f.trim_start_matches("r#")).collect();
        assert_eq!(names, ours, "fields of struct {} (C order vs Rust order)", l.c_name);
        for (m, (f, off)) in members.iter().zip(l.fields) {
            assert_eq!(m.bitfield_size, 0, "{}.{} is a bitfield", l.c_name, m.name);
            assert_eq!(m.bit_offset as usize, off * 8, "offset of {}.{}", l.c_name, f);
            let rust_size = l.fields.iter().map(|(_, o)| *o).filter(|o| o > off).min().unwrap_or(l.size) - off;
            let c_size = btf.size_of(m.type_id).unwrap() as usize;
            assert!(
                c_size <= rust_size,
                "{}.{} is {c_size} bytes in C, room for {rust_size} in Rust",
                l.c_name,
                m.name
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 20);
}

#[test]
fn event_record_is_header_plus_snap_buffer() {
    let btf = object_btf();
    let (_, size, _) = btf.find_struct("event_record").unwrap();
    assert_eq!(size as usize, abi::EVENT_RECORD_SIZE);
}

/// The struct type of global `var` in data section `section`.
fn global_struct(btf: &Btf, section: &str, var: &str) -> (String, u32) {
    let var_type = btf
        .ids_by_name(section)
        .iter()
        .find_map(|&id| match btf.get(id) {
            Some(Type::Datasec { vars, .. }) => vars.iter().find_map(|&(v, _, _)| match btf.get(v) {
                Some(Type::Var { name, target }) if name == var => Some(*target),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{var} lives in {section}"));
    let (resolved, _) = btf.resolve(var_type);
    match btf.get(resolved) {
        Some(Type::Struct { name, size, .. }) => (name.clone(), *size),
        other => panic!("{var} has type {other:?}"),
    }
}

#[test]
fn settings_globals_are_the_mirrored_structs() {
    let btf = object_btf();
    // Load-time settings are read-only (.rodata); run-time settings and the
    // clock calibration share .data, which `datapath config` rewrites.
    for (section, var, ty, size) in [
        (".rodata", "cfg", "dp_config", std::mem::size_of::<abi::DpConfig>()),
        (".data", "rt", "dp_runtime", std::mem::size_of::<abi::DpRuntime>()),
        (".data", "clk", "dp_clock", std::mem::size_of::<abi::DpClock>()),
        (".bss", "clock_sample", "clock_sample", std::mem::size_of::<abi::ClockSample>()),
    ] {
        let (name, sz) = global_struct(&btf, section, var);
        assert_eq!(name, ty, "type of {var}");
        assert_eq!(sz as usize, size, "size of {var}");
    }
}

#[test]
fn map_key_and_value_types_match_the_mirrors() {
    // The .maps section declares each map's key and value type; they must be
    // the structs the Rust side reads them as.
    let btf = object_btf();
    let expect = [
        ("endpoints", "endpoint_key", "endpoint_info"),
        ("ipcache", "ipcache_key", "ipcache_value"),
        ("policy", "policy_key", "policy_value"),
        ("ct4", "ct4_key", "ct_entry"),
        ("ct6", "ct6_key", "ct_entry"),
        ("frags", "frag_key", "frag_ports"),
        ("identities", "u32", "identity_labels"),
        ("endpoint_names", "u32", "endpoint_name"),
    ];
    let maps = btf.ids_by_name(".maps");
    let vars: Vec<(String, u32)> = maps
        .iter()
        .flat_map(|&id| match btf.get(id) {
            Some(Type::Datasec { vars, .. }) => vars.clone(),
            _ => vec![],
        })
        .filter_map(|(v, _, _)| match btf.get(v) {
            Some(Type::Var { name, target }) => Some((name.clone(), *target)),
            _ => None,
        })
        .collect();
    for (map, key, value) in expect {
        let (_, t) = vars.iter().find(|(n, _)| n == map).unwrap_or_else(|| panic!("map {map} in .maps"));
        let (_, Some(Type::Struct { members, .. })) = btf.resolve(*t) else { panic!("map {map} definition") };
        let pointee = |field: &str| {
            let m = members.iter().find(|m| m.name == field).unwrap();
            let (_, ptr) = btf.resolve(m.type_id);
            let Some(Type::Ptr { target }) = ptr else { panic!("{map}.{field} is not a pointer") };
            match btf.resolve(*target).1 {
                Some(Type::Struct { name, .. }) => name.clone(),
                // __u32 resolves through its typedefs to the int.
                Some(Type::Int { size: 4, signed: false, .. }) => "u32".into(),
                other => panic!("{map}.{field} points to {other:?}"),
            }
        };
        assert_eq!(pointee("key"), key, "key type of {map}");
        assert_eq!(pointee("value"), value, "value type of {map}");
    }
}

/// Every constant the datapath and the Rust side share, by its C name.
fn mirrored_constants() -> Vec<(&'static str, i64)> {
    use abi::Reason;
    let mut v: Vec<(&'static str, i64)> = vec![
        ("DPDBG_FAMILY_IPV4", abi::FAMILY_IPV4.into()),
        ("DPDBG_FAMILY_IPV6", abi::FAMILY_IPV6.into()),
        ("DPDBG_DIR_INGRESS", abi::DIR_INGRESS.into()),
        ("DPDBG_DIR_EGRESS", abi::DIR_EGRESS.into()),
        ("DPDBG_IDENTITY_ANY", abi::IDENTITY_ANY.into()),
        ("DPDBG_LABELS_LEN", abi::LABELS_LEN as i64),
        ("DPDBG_NAMESPACE_LEN", abi::NAMESPACE_LEN as i64),
        ("DPDBG_POD_LEN", abi::POD_LEN as i64),
        ("DPDBG_IDENTITY_HOST", abi::IDENTITY_HOST.into()),
        ("DPDBG_IDENTITY_WORLD", abi::IDENTITY_WORLD.into()),
        ("DPDBG_EP_ENFORCE_INGRESS", abi::EP_ENFORCE_INGRESS.into()),
        ("DPDBG_EP_ENFORCE_EGRESS", abi::EP_ENFORCE_EGRESS.into()),
        ("DPDBG_POLICY_ALLOW", abi::POLICY_ALLOW.into()),
        ("DPDBG_POLICY_DENY", abi::POLICY_DENY.into()),
        ("DPDBG_MATCH_NONE", abi::MATCH_NONE.into()),
        ("DPDBG_MATCH_L3_L4", abi::MATCH_L3_L4.into()),
        ("DPDBG_MATCH_L3_ONLY", abi::MATCH_L3_ONLY.into()),
        ("DPDBG_MATCH_L4_ONLY", abi::MATCH_L4_ONLY.into()),
        ("DPDBG_MATCH_ALL", abi::MATCH_ALL.into()),
        ("DPDBG_CT_F_SEEN_NON_SYN", abi::CT_F_SEEN_NON_SYN.into()),
        ("DPDBG_CT_F_CLOSING_FWD", abi::CT_F_CLOSING_FWD.into()),
        ("DPDBG_CT_F_CLOSING_REV", abi::CT_F_CLOSING_REV.into()),
        ("DPDBG_CT_F_REPLY_SEEN", abi::CT_F_REPLY_SEEN.into()),
        ("DPDBG_CT_F_TWIN", abi::CT_F_TWIN.into()),
        ("DPDBG_CT_LIFETIME_TCP_SYN", abi::CT_LIFETIME_TCP_SYN.into()),
        ("DPDBG_CT_LIFETIME_TCP", abi::CT_LIFETIME_TCP.into()),
        ("DPDBG_CT_LIFETIME_CLOSE", abi::CT_LIFETIME_CLOSE.into()),
        ("DPDBG_CT_LIFETIME_NONTCP", abi::CT_LIFETIME_NONTCP.into()),
        ("DPDBG_CT_NEW", abi::CT_NEW.into()),
        ("DPDBG_CT_ESTABLISHED", abi::CT_ESTABLISHED.into()),
        ("DPDBG_CT_REPLY", abi::CT_REPLY.into()),
        ("DPDBG_CT_RELATED", abi::CT_RELATED.into()),
        ("DPDBG_CT_REOPENED", abi::CT_REOPENED.into()),
        ("DPDBG_METRICS_MAX", abi::METRICS_MAX.into()),
        ("DPDBG_EVENT_DROP", abi::EVENT_DROP.into()),
        ("DPDBG_EVENT_TRACE", abi::EVENT_TRACE.into()),
        ("DPDBG_EVENT_POLICY_VERDICT", abi::EVENT_POLICY_VERDICT.into()),
        ("DPDBG_TRACE_TO_ENDPOINT", abi::TRACE_TO_ENDPOINT.into()),
        ("DPDBG_TRACE_FROM_ENDPOINT", abi::TRACE_FROM_ENDPOINT.into()),
        ("DPDBG_VERDICT_FORWARDED", abi::VERDICT_FORWARDED.into()),
        ("DPDBG_VERDICT_DROPPED", abi::VERDICT_DROPPED.into()),
        ("DPDBG_EVF_DENY_OVERRODE_ALLOW", abi::EVF_DENY_OVERRODE_ALLOW.into()),
        ("DPDBG_EVF_FRAGMENT", abi::EVF_FRAGMENT.into()),
        ("DPDBG_SNAPLEN_INLINE", abi::SNAPLEN_INLINE.into()),
        ("DPDBG_SNAPLEN_MAX", abi::SNAPLEN_MAX.into()),
        ("DPDBG_TRANSPORT_RINGBUF", abi::TRANSPORT_RINGBUF.into()),
        ("DPDBG_TRANSPORT_PERF", abi::TRANSPORT_PERF.into()),
        ("DPDBG_AGG_NONE", abi::AGG_NONE.into()),
        ("DPDBG_AGG_MEDIUM", abi::AGG_MEDIUM.into()),
        ("DPDBG_AGG_MAX", abi::AGG_MAX.into()),
        ("DPDBG_TRACE_CT_SKIPPED", abi::TRACE_CT_SKIPPED.into()),
        ("DPDBG_TRACE_CT_ABSENT", abi::TRACE_CT_ABSENT.into()),
        ("DPDBG_TRACE_CT_FOUND", abi::TRACE_CT_FOUND.into()),
        ("DPDBG_TRACE_CT_OTHER_IF", abi::TRACE_CT_OTHER_IF.into()),
        ("DPDBG_TRACE_CT_EXPIRED", abi::TRACE_CT_EXPIRED.into()),
        ("DPDBG_TRACE_CT_CLOSED", abi::TRACE_CT_CLOSED.into()),
        ("DPDBG_TRACE_CT_RELATED_FWD", abi::TRACE_CT_RELATED_FWD as i64),
        ("DPDBG_TRACE_CT_RELATED_REV", abi::TRACE_CT_RELATED_REV as i64),
        ("DPDBG_TRACE_CT_FWD", abi::TRACE_CT_FWD as i64),
        ("DPDBG_TRACE_CT_REV", abi::TRACE_CT_REV as i64),
        ("DPDBG_TRACE_CT_SLOTS", abi::TRACE_CT_SLOTS as i64),
        ("DPDBG_TRACE_EP_SKIPPED", abi::TRACE_EP_SKIPPED.into()),
        ("DPDBG_TRACE_EP_FOUND", abi::TRACE_EP_FOUND.into()),
        ("DPDBG_TRACE_EP_ABSENT", abi::TRACE_EP_ABSENT.into()),
        ("DPDBG_TRACE_EP_OTHER_IF", abi::TRACE_EP_OTHER_IF.into()),
        ("DPDBG_TRACE_PEER_NONE", abi::TRACE_PEER_NONE.into()),
        ("DPDBG_TRACE_PEER_ENDPOINT", abi::TRACE_PEER_ENDPOINT.into()),
        ("DPDBG_TRACE_PEER_IPCACHE", abi::TRACE_PEER_IPCACHE.into()),
        ("DPDBG_TRACE_PEER_WORLD", abi::TRACE_PEER_WORLD.into()),
        ("DPDBG_TRACE_POLICY_SKIPPED", abi::TRACE_POLICY_SKIPPED.into()),
        ("DPDBG_TRACE_POLICY_ABSENT", abi::TRACE_POLICY_ABSENT.into()),
        ("DPDBG_TRACE_POLICY_ALLOW", abi::TRACE_POLICY_ALLOW.into()),
        ("DPDBG_TRACE_POLICY_DENY", abi::TRACE_POLICY_DENY.into()),
        ("DPDBG_TRACE_CREATE_NONE", abi::TRACE_CREATE_NONE.into()),
        ("DPDBG_TRACE_CREATE_NEW", abi::TRACE_CREATE_NEW.into()),
        ("DPDBG_TRACE_CREATE_REPLACE", abi::TRACE_CREATE_REPLACE.into()),
        ("DPDBG_TRACE_EVENTS_MAX", abi::TRACE_EVENTS_MAX as i64),
        ("DPDBG_TRACE_POLICY_LEVELS", abi::TRACE_POLICY_LEVELS as i64),
    ];
    for (c, r) in [
        ("DPDBG_REASON_FORWARDED", Reason::FORWARDED),
        ("DPDBG_REASON_INVALID_SOURCE_IP", Reason::INVALID_SOURCE_IP),
        ("DPDBG_REASON_POLICY_DENIED", Reason::POLICY_DENIED),
        ("DPDBG_REASON_INVALID_PACKET", Reason::INVALID_PACKET),
        ("DPDBG_REASON_CT_TRUNCATED", Reason::CT_TRUNCATED),
        ("DPDBG_REASON_UNROUTABLE", Reason::UNROUTABLE),
        ("DPDBG_REASON_CT_MAP_INSERT", Reason::CT_MAP_INSERT),
        ("DPDBG_REASON_INVALID_EXTHDR", Reason::INVALID_EXTHDR),
        ("DPDBG_REASON_FRAG_NOT_FOUND", Reason::FRAG_NOT_FOUND),
        ("DPDBG_REASON_POLICY_DENYLIST", Reason::POLICY_DENYLIST),
        ("DPDBG_REASON_PASS_OTHER_L3", Reason::PASS_OTHER_L3),
        ("DPDBG_REASON_EVENT_LOST", Reason::EVENT_LOST),
        ("DPDBG_REASON_EVENT_UNDECODABLE", Reason::EVENT_UNDECODABLE),
    ] {
        v.push((c, r.0.into()));
    }
    v
}

/// The constants are C enums, kept in the object's BTF: each equals its
/// Rust mirror, and no enumerator is left without one.
#[test]
fn every_shared_constant_matches_the_object_btf() {
    let btf = object_btf();
    let (_, _, members) = btf.find_struct("dpdbg_abi_enums").expect("struct dpdbg_abi_enums in the BTF");
    let mut in_c = std::collections::BTreeMap::new();
    for m in members {
        let (_, t) = btf.resolve(m.type_id);
        let Some(Type::Enum { values, .. }) = t else { panic!("dpdbg_abi_enums.{} is not an enum", m.name) };
        for e in values {
            in_c.insert(e.name.clone(), e.value);
        }
    }
    let ours = mirrored_constants();
    for (name, value) in &ours {
        assert_eq!(in_c.get(*name), Some(value), "{name}: C has {:?}, Rust {value}", in_c.get(*name));
    }
    let mirrored: std::collections::BTreeSet<&str> = ours.iter().map(|(n, _)| *n).collect();
    let unmirrored: Vec<&String> = in_c.keys().filter(|k| !mirrored.contains(k.as_str())).collect();
    assert!(unmirrored.is_empty(), "C constants without a Rust mirror: {unmirrored:?}");
}
