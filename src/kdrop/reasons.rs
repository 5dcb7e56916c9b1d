//! Kernel drops' names and layouts, from the running kernel's BTF: a leaf
//! below the flow decoding (which names a kernel drop's reason) and the
//! loader (which sets the program's field offsets).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::btf::{Btf, Type};

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The event type of a kernel drop (cilium's monitor types end at 7).
pub const EVENT_KERNEL_DROP: u8 = 8;
/// event_hdr.flags of a kernel drop: its ifindex is another network namespace's.
pub const F_NETNS: u8 = 0x80;
/// The subtype of a reason that does not fit in a byte (a subsystem's).
pub const REASON_OTHER: u8 = 255;

/// Whether an event's ifindex is one of this node's (host namespace)
/// interfaces: a kernel drop inside an endpoint's namespace says it is not.
pub fn host_ifindex(hdr: &crate::abi::EventHdr) -> bool {
    !(hdr.r#type == EVENT_KERNEL_DROP && hdr.flags & F_NETNS != 0)
}

/// The running kernel's BTF, read once per process.
pub fn kernel_btf() -> std::result::Result<&'static Btf, String> {
    static BTF: OnceLock<std::result::Result<Btf, String>> = OnceLock::new();
    BTF.get_or_init(|| {
        let data = std::fs::read(KERNEL_BTF).map_err(|e| format!("{KERNEL_BTF}: {e}"))?;
        Btf::parse(&data).map_err(|e| format!("{KERNEL_BTF}: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The byte offset of `field` in struct `st`, looking into anonymous
/// structs and unions as C does (sk_buff keeps its headers in one).
pub fn field_offset(btf: &Btf, st: &str, field: &str) -> Option<u32> {
    fn find(btf: &Btf, id: u32, field: &str) -> Option<u32> {
        let (_, t) = btf.resolve(id);
        let members = match t? {
            Type::Struct { members, .. } | Type::Union { members, .. } => members,
            _ => return None,
        };
        for m in members {
            if m.name == field {
                return Some(m.bit_offset / 8);
            }
            if m.name.is_empty()
                && let Some(off) = find(btf, m.type_id, field)
            {
                return Some(m.bit_offset / 8 + off);
            }
        }
        None
    }
    btf.ids_by_name(st)
        .iter()
        .filter(|id| matches!(btf.get(**id), Some(Type::Struct { members, .. }) if !members.is_empty()))
        .find_map(|id| find(btf, *id, field))
}

/// `enum skb_drop_reason` of the running kernel: value to name, without
/// the SKB_DROP_REASON_ / SKB_ prefix (NO_SOCKET, CONSUMED). Empty when the
/// kernel has no BTF.
pub fn reasons() -> &'static HashMap<u32, String> {
    static NAMES: OnceLock<HashMap<u32, String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let Ok(btf) = kernel_btf() else { return HashMap::new() };
        btf.ids_by_name("skb_drop_reason")
            .iter()
            .find_map(|id| match btf.get(*id) {
                Some(Type::Enum { values, .. }) => Some(
                    values
                        .iter()
                        .map(|v| {
                            let n = v.name.strip_prefix("SKB_DROP_REASON_").or_else(|| v.name.strip_prefix("SKB_"));
                            (v.value as u32, n.unwrap_or(&v.name).to_string())
                        })
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default()
    })
}

/// The kernel's name of the reason a kernel-drop event carries.
pub fn reason_name(subtype: u8) -> &'static str {
    static CACHE: OnceLock<HashMap<u8, &'static str>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        reasons()
            .iter()
            .filter(|(v, _)| **v < REASON_OTHER as u32)
            .map(|(v, n)| (*v as u8, &*Box::leak(n.clone().into_boxed_str())))
            .collect()
    });
    match cache.get(&subtype) {
        Some(n) => n,
        None if subtype == REASON_OTHER => "OTHER (a subsystem's reason)",
        None => "UNKNOWN",
    }
}
