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
    assert_eq!(checked, 17);
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
                other => panic!("{map}.{field} points to {other:?}"),
            }
        };
        assert_eq!(pointee("key"), key, "key type of {map}");
        assert_eq!(pointee("value"), value, "value type of {map}");
    }
}
