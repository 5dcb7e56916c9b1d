//! Rust mirrors of bpf/include/dpdbg.h. Every struct here is checked against
//! the BTF of the compiled object (tests/abi_layout.rs): size and the offset
//! of each field, by name.

pub mod record;

use serde::Serialize;

/// Size and field offsets of one mirrored struct, for the layout test.
#[derive(Debug)]
pub struct Layout {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

macro_rules! abi_structs {
    ($(
        $(#[$m:meta])*
        $cname:literal => pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)? }
    )*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
            pub struct $name { $( $(#[$fm])* pub $f: $t ),* }

            // SAFETY: repr(C), only integers and byte arrays, no padding the
            // kernel could leave uninitialised that we would read as a value.
            unsafe impl aya::Pod for $name {}
        )*

        /// Every mirrored struct with its C name.
        pub const LAYOUTS: &[Layout] = &[
            $( Layout {
                c_name: $cname,
                size: core::mem::size_of::<$name>(),
                fields: &[ $( (stringify!($f), core::mem::offset_of!($name, $f)) ),* ],
            }, )*
        ];
    };
}

abi_structs! {
    /// Key of the endpoints map: the endpoint's IP (IPv4 in addr[0..4]).
    "endpoint_key" => pub struct EndpointKey { pub addr: [u8; 16], pub family: u8, pub pad: [u8; 3] }
    /// Value of the endpoints map.
    "endpoint_info" => pub struct EndpointInfo {
        pub endpoint_id: u32, pub identity: u32, pub ifindex: u32, pub mac: [u8; 6], pub flags: u16,
    }
    /// Key of the ipcache LPM trie; prefixlen includes the 32 bits of family and pad.
    "ipcache_key" => pub struct IpcacheKey { pub prefixlen: u32, pub family: u8, pub pad: [u8; 3], pub addr: [u8; 16] }
    /// Value of the ipcache.
    "ipcache_value" => pub struct IpcacheValue { pub identity: u32, pub flags: u32 }
    /// Key of the policy map; identity 0 and port/proto 0 are wildcards.
    "policy_key" => pub struct PolicyKey { pub endpoint_id: u32, pub identity: u32, pub dport: u16, pub proto: u8, pub direction: u8 }
    /// Value of the policy map.
    "policy_value" => pub struct PolicyValue { pub action: u8, pub pad: [u8; 7], pub packets: u64, pub bytes: u64 }
    /// Key of ct4, in the orientation of the connection's first packet.
    "ct4_key" => pub struct Ct4Key {
        pub saddr: [u8; 4], pub daddr: [u8; 4], pub sport: u16, pub dport: u16, pub proto: u8, pub direction: u8, pub pad: u16,
    }
    /// Key of ct6.
    "ct6_key" => pub struct Ct6Key {
        pub saddr: [u8; 16], pub daddr: [u8; 16], pub sport: u16, pub dport: u16, pub proto: u8, pub direction: u8, pub pad: u16,
    }
    /// Value of ct4 and ct6; times are CLOCK_MONOTONIC_COARSE nanoseconds.
    "ct_entry" => pub struct CtEntry {
        pub last_seen_ns: u64, pub lifetime_s: u32, pub ifindex: u32,
        pub tcp_flags_fwd: u8, pub tcp_flags_rev: u8, pub flags: u8, pub pad: u8, pub src_identity: u32,
        pub packets_fwd: u64, pub bytes_fwd: u64, pub packets_rev: u64, pub bytes_rev: u64,
        pub created_ns: u64,
    }
    /// Per-CPU value of the metrics array.
    "metrics_value" => pub struct MetricsValue { pub packets: u64, pub bytes: u64 }
    /// Header of every datapath event; cap_len packet bytes follow it.
    "event_hdr" => pub struct EventHdr {
        pub timestamp_ns: u64,
        pub r#type: u8, pub subtype: u8, pub verdict: u8, pub ct_state: u8,
        pub direction: u8, pub family: u8, pub proto: u8, pub flags: u8,
        pub ifindex: u32, pub endpoint_id: u32, pub src_identity: u32, pub dst_identity: u32,
        pub orig_len: u32, pub cap_len: u32,
    }
    /// Load-time settings, the `cfg` global of the object (.rodata).
    "dp_config" => pub struct DpConfig { pub event_transport: u32, pub snaplen: u32 }
    /// Run-time settings, the `rt` global of the object (.data, pinned as maps/settings).
    "dp_runtime" => pub struct DpRuntime { pub aggregation: u32, pub debug: u32 }
    /// How the datapath turns jiffies into coarse-clock nanoseconds (.data `clk`).
    "dp_clock" => pub struct DpClock { pub ns_per_jiffy: u64, pub offset_ns: i64 }
    /// One reading of both clocks by clock_probe (.bss `clock_sample`).
    "clock_sample" => pub struct ClockSample { pub jiffies: u64, pub coarse_ns: u64 }
    /// Key of the frags map: one datagram's fragments.
    "frag_key" => pub struct FragKey {
        pub saddr: [u8; 16], pub daddr: [u8; 16], pub id: u32, pub proto: u8, pub family: u8, pub pad: u16,
    }
    /// Value of the frags map: the ports its first fragment carried.
    "frag_ports" => pub struct FragPorts { pub sport: u16, pub dport: u16 }
    /// Value of the identities map: the identity's labels, "k=v" joined by ','.
    "identity_labels" => pub struct IdentityLabels { pub labels: CText<LABELS_LEN> }
    /// Value of the endpoint_names map.
    "endpoint_name" => pub struct EndpointName { pub namespace: CText<NAMESPACE_LEN>, pub pod: CText<POD_LEN> }
    /// What one dry run of the datapath (`dpdbg trace`) recorded: the value of trace_result.
    "trace_result" => pub struct TraceResult {
        pub events: [EventHdr; TRACE_EVENTS_MAX],
        pub ct: CtEntry,
        pub ep: EndpointInfo,
        pub policy_keys: [PolicyKey; TRACE_POLICY_LEVELS],
        pub ifindex: u32, pub peer_identity: u32, pub sport: u16, pub dport: u16,
        pub parse: u8, pub family: u8, pub proto: u8, pub tcp_flags: u8,
        pub frag: u8, pub icmp_err: u8, pub neigh: u8, pub ct_state: u8,
        pub ct_lookup: [u8; TRACE_CT_SLOTS],
        pub policy: [u8; TRACE_POLICY_LEVELS],
        pub ep_state: u8, pub enforced: u8, pub peer_source: u8, pub ct_create: u8,
        pub policy_match: u8, pub policy_overrode: u8, pub reason: u8, pub nevents: u8,
    }
}

pub const FAMILY_IPV4: u8 = 4;
pub const FAMILY_IPV6: u8 = 6;

pub const DIR_INGRESS: u8 = 0;
pub const DIR_EGRESS: u8 = 1;

pub const LABELS_LEN: usize = 256;
pub const NAMESPACE_LEN: usize = 64;
pub const POD_LEN: usize = 256;

/// A NUL-terminated string of at most N - 1 bytes in a char[N] of the ABI.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CText<const N: usize>(pub [u8; N]);

impl<const N: usize> Default for CText<N> {
    fn default() -> Self {
        CText([0; N])
    }
}

impl<const N: usize> std::fmt::Debug for CText<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.as_str(), f)
    }
}

impl<const N: usize> CText<N> {
    /// The text up to its NUL (bytes that are not UTF-8 replaced).
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self.0.iter().position(|b| *b == 0).unwrap_or(N);
        String::from_utf8_lossy(&self.0[..end])
    }

    /// `s` as a C string, or None when it does not fit with its NUL (never cut).
    pub fn new(s: &str) -> Option<Self> {
        if s.len() >= N || s.as_bytes().contains(&0) {
            return None;
        }
        let mut b = [0u8; N];
        b[..s.len()].copy_from_slice(s.as_bytes());
        Some(CText(b))
    }
}

pub const IDENTITY_ANY: u32 = 0;
pub const IDENTITY_HOST: u32 = 1;
pub const IDENTITY_WORLD: u32 = 2;

pub const EP_ENFORCE_INGRESS: u16 = 0x1;
pub const EP_ENFORCE_EGRESS: u16 = 0x2;

pub const POLICY_ALLOW: u8 = 0;
pub const POLICY_DENY: u8 = 1;

pub const MATCH_NONE: u8 = 0;
pub const MATCH_L3_L4: u8 = 1;
pub const MATCH_L3_ONLY: u8 = 2;
pub const MATCH_L4_ONLY: u8 = 3;
pub const MATCH_ALL: u8 = 4;

pub const CT_F_SEEN_NON_SYN: u8 = 0x01;
pub const CT_F_CLOSING_FWD: u8 = 0x02;
pub const CT_F_CLOSING_REV: u8 = 0x04;
pub const CT_F_REPLY_SEEN: u8 = 0x08;
/// The reversed tuple has an entry of its own too: replies look up their own tuple first.
pub const CT_F_TWIN: u8 = 0x10;

pub const CT_NEW: u8 = 1;
pub const CT_ESTABLISHED: u8 = 2;
pub const CT_REPLY: u8 = 3;
pub const CT_RELATED: u8 = 4;
pub const CT_REOPENED: u8 = 5;

pub const EVF_DENY_OVERRODE_ALLOW: u8 = 0x01;
pub const EVF_FRAGMENT: u8 = 0x02;

/// Lifetimes of conntrack entries in seconds after their last packet.
pub const CT_LIFETIME_TCP_SYN: u32 = 60;
pub const CT_LIFETIME_TCP: u32 = 21600;
pub const CT_LIFETIME_CLOSE: u32 = 10;
pub const CT_LIFETIME_NONTCP: u32 = 60;

pub const EVENT_DROP: u8 = 1;
pub const EVENT_TRACE: u8 = 4;
pub const EVENT_POLICY_VERDICT: u8 = 5;

pub const TRACE_TO_ENDPOINT: u8 = 0;
pub const TRACE_FROM_ENDPOINT: u8 = 5;

pub const VERDICT_FORWARDED: u8 = 1;
pub const VERDICT_DROPPED: u8 = 2;

/// Snap lengths up to this are reserved in the ring at a fixed size
/// (`EVENT_RECORD_SIZE`); larger ones are written at their own length.
pub const SNAPLEN_INLINE: u32 = 256;
/// The largest snap length: a jumbo frame.
pub const SNAPLEN_MAX: u32 = 9216;
/// Size of one ringbuf record at a snap length up to `SNAPLEN_INLINE`:
/// header plus the fixed snap buffer. Above it records are as long as the
/// header and their `cap_len`; readers take any length (`record::header`).
pub const EVENT_RECORD_SIZE: usize = core::mem::size_of::<EventHdr>() + SNAPLEN_INLINE as usize;

pub const TRANSPORT_RINGBUF: u32 = 0;
pub const TRANSPORT_PERF: u32 = 1;

pub const AGG_NONE: u32 = 0;
pub const AGG_MEDIUM: u32 = 1;
pub const AGG_MAX: u32 = 2;

/// trace_result.ct_lookup values.
pub const TRACE_CT_SKIPPED: u8 = 0;
pub const TRACE_CT_ABSENT: u8 = 1;
pub const TRACE_CT_FOUND: u8 = 2;
pub const TRACE_CT_OTHER_IF: u8 = 3;
pub const TRACE_CT_EXPIRED: u8 = 4;
pub const TRACE_CT_CLOSED: u8 = 5;
/// trace_result.ct_lookup slots.
pub const TRACE_CT_RELATED_FWD: usize = 0;
pub const TRACE_CT_RELATED_REV: usize = 1;
pub const TRACE_CT_FWD: usize = 2;
pub const TRACE_CT_REV: usize = 3;
pub const TRACE_CT_SLOTS: usize = 4;
/// trace_result.ep_state values.
pub const TRACE_EP_SKIPPED: u8 = 0;
pub const TRACE_EP_FOUND: u8 = 1;
pub const TRACE_EP_ABSENT: u8 = 2;
pub const TRACE_EP_OTHER_IF: u8 = 3;
/// trace_result.peer_source values.
pub const TRACE_PEER_NONE: u8 = 0;
pub const TRACE_PEER_ENDPOINT: u8 = 1;
pub const TRACE_PEER_IPCACHE: u8 = 2;
pub const TRACE_PEER_WORLD: u8 = 3;
/// trace_result.policy values, per level.
pub const TRACE_POLICY_SKIPPED: u8 = 0;
pub const TRACE_POLICY_ABSENT: u8 = 1;
pub const TRACE_POLICY_ALLOW: u8 = 2;
pub const TRACE_POLICY_DENY: u8 = 3;
/// trace_result.ct_create values.
pub const TRACE_CREATE_NONE: u8 = 0;
pub const TRACE_CREATE_NEW: u8 = 1;
pub const TRACE_CREATE_REPLACE: u8 = 2;
pub const TRACE_EVENTS_MAX: usize = 2;
pub const TRACE_POLICY_LEVELS: usize = 4;

/// Number of slots in the metrics array: reason * 2 + direction.
pub const METRICS_MAX: u32 = 512;

/// Why the datapath forwarded, passed or dropped a packet. Numbers below 240
/// are cilium's drop reasons for the same cause, so operators can look them
/// up; 240 and up are dpdbg's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Reason(pub u8);

impl Reason {
    pub const FORWARDED: Reason = Reason(0);
    pub const INVALID_SOURCE_IP: Reason = Reason(132);
    pub const POLICY_DENIED: Reason = Reason(133);
    pub const INVALID_PACKET: Reason = Reason(134);
    pub const CT_TRUNCATED: Reason = Reason(135);
    pub const UNROUTABLE: Reason = Reason(151);
    pub const CT_MAP_INSERT: Reason = Reason(155);
    pub const INVALID_EXTHDR: Reason = Reason(156);
    pub const FRAG_NOT_FOUND: Reason = Reason(175);
    pub const POLICY_DENYLIST: Reason = Reason(181);
    pub const PASS_OTHER_L3: Reason = Reason(240);
    pub const EVENT_LOST: Reason = Reason(242);
    pub const EVENT_UNDECODABLE: Reason = Reason(243);

    /// The text `cilium-dbg monitor` prints for the same number, or ours.
    pub fn text(self) -> &'static str {
        match self.0 {
            0 => "Forwarded",
            132 => "Invalid source ip",
            133 => "Policy denied",
            134 => "Invalid packet",
            135 => "CT: Truncated or invalid header",
            137 => "CT: Unknown L4 protocol",
            139 => "Unsupported L3 protocol",
            142 => "Unknown L4 protocol",
            151 => "Stale or unroutable IP",
            155 => "CT: Map insertion failed",
            156 => "Invalid IPv6 extension header",
            157 => "IP fragmentation not supported",
            175 => "First logical datagram fragment not found",
            171 => "Invalid identity",
            181 => "Policy denied by denylist",
            240 => "Passed: unsupported L3 protocol",
            242 => "Event lost: buffer full",
            243 => "Event undecodable by a reader",
            _ => "Unknown reason",
        }
    }

    /// Whether the packet was dropped for this reason.
    pub fn is_drop(self) -> bool {
        (1..240).contains(&self.0)
    }
}

/// Hubble's name for a policy match kind.
pub fn match_kind_text(m: u8) -> &'static str {
    match m {
        MATCH_L3_L4 => "L3-L4",
        MATCH_L3_ONLY => "L3-Only",
        MATCH_L4_ONLY => "L4-Only",
        MATCH_ALL => "all",
        _ => "none",
    }
}

pub fn direction_text(d: u8) -> &'static str {
    if d == DIR_EGRESS { "egress" } else { "ingress" }
}

pub fn ct_state_text(s: u8) -> &'static str {
    match s {
        CT_NEW => "new",
        CT_ESTABLISHED => "established",
        CT_REPLY => "reply",
        CT_RELATED => "related",
        CT_REOPENED => "reopened",
        _ => "unknown",
    }
}
