use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything the core can fail with. Messages say what went wrong, where,
/// and what to do about it, because operators read them as they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process lacks the capabilities BPF and netlink need.
    #[error("permission denied: {what} needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON); run it with sudo")]
    NotPrivileged { what: String },

    /// The bpffs directory is absent or is not a bpf filesystem.
    #[error("bpffs is not mounted at {path}: run `mount -t bpf bpf {path}` (or pass --bpffs DIR)")]
    BpffsNotMounted { path: PathBuf },

    /// Nothing is pinned under the datapath's directory.
    #[error("no datapath is loaded under {dir}: run `dpdbg datapath load` first")]
    NotLoaded { dir: PathBuf },

    /// Some of the datapath's pins are there, not all, or a load did not
    /// finish: a killed load, or pins removed behind dpdbg's back.
    #[error(
        "the datapath under {dir} is incomplete ({}): run `dpdbg datapath load` to clean it up and load it again, or `dpdbg datapath unload` to remove it",
        partial.describe()
    )]
    Incomplete { dir: PathBuf, partial: Box<crate::pins::Partial> },

    /// A load found an incomplete datapath it will not clean up by itself:
    /// interfaces still run its programs.
    #[error(
        "the datapath under {dir} is incomplete ({}) and still attached to {}: run `dpdbg datapath unload` (it detaches them and removes what is left), then `dpdbg datapath load`",
        partial.describe(),
        interfaces.join(", ")
    )]
    IncompleteAttached { dir: PathBuf, partial: Box<crate::pins::Partial>, interfaces: Vec<String> },

    /// The datapath's programs are already pinned.
    #[error("a datapath is already loaded under {dir}: run `dpdbg datapath unload` first")]
    AlreadyLoaded { dir: PathBuf },

    /// The named network interface does not exist in this network namespace.
    #[error("interface {name:?} does not exist (see `ip link show`)")]
    NoSuchInterface { name: String },

    /// The interface already has the datapath attached in that direction.
    #[error("interface {name} is already attached ({direction}): run `dpdbg datapath detach {name}` first")]
    AlreadyAttached { name: String, direction: &'static str },

    /// Detach was asked for an interface that has no dpdbg link.
    #[error("interface {name} has no dpdbg program attached (see `dpdbg datapath status`)")]
    NotAttached { name: String },

    /// The kernel's verifier refused a program; the tail of its log says why.
    #[error("the kernel verifier rejected program {program}: {reason}\nverifier log (last lines):\n{log_tail}")]
    VerifierRejected { program: String, reason: String, log_tail: String },

    /// A system call or file operation failed.
    #[error("{call} {path}: {source}")]
    Io {
        call: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An operation through aya (map, program or link) failed.
    #[error("{what}: {source}")]
    Bpf {
        what: String,
        #[source]
        source: BoxError,
    },

    /// An external command (ip, mount) failed.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },

    /// A value the user gave is not acceptable.
    #[error("{0}")]
    InvalidInput(String),

    /// A name or labels that would not fit where dpdbg keeps them: refused, never cut.
    #[error("{what} takes {len} bytes; at most {max} fit")]
    TooLong { what: String, len: usize, max: usize },

    /// A label Kubernetes would not accept.
    #[error("{why}")]
    BadLabel { label: String, why: String },

    /// Reserved identities (below 256) have dpdbg's own labels.
    #[error("identity {id} is reserved (below 256): its labels are dpdbg's (reserved:host, reserved:world)")]
    ReservedIdentity { id: u32 },

    /// The object's BTF could not be read.
    #[error(transparent)]
    Btf(#[from] crate::btf::BtfError),

    /// Another process already consumes the datapath's events.
    #[error(
        "another process is reading the datapath's events under {dir} (pid holding the lock: {holder}): a ring buffer has one consumer, so two readers would steal each other's events; stop the other `dpdbg monitor` first"
    )]
    EventsBusy { dir: PathBuf, holder: String },

    /// Another process is loading, attaching, detaching or unloading.
    #[error("the datapath under {dir} is busy: another dpdbg (pid {holder}) is changing it; try again when it is done")]
    DatapathBusy { dir: PathBuf, holder: String },

    /// An allow rule was added where a deny rule holds the same key.
    #[error(
        "a deny rule already exists for {rule}: deny wins over allow, so the allow would never apply; delete the deny first (`dpdbg bpf policy delete …`) if the allow is what you want"
    )]
    PolicyConflict { rule: String },

    /// A lab operation could not proceed.
    #[error("lab: {0}")]
    Lab(String),
}

impl Error {
    pub fn io(call: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { call, path: path.into(), source }
    }

    pub(crate) fn bpf(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Bpf { what: what.into(), source: source.into() }
    }
}
