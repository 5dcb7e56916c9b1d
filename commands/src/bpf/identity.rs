//! `dpdbg bpf identity`: security identities and their labels, in
//! cilium-dbg's shape (`cilium-dbg identity list`): the reserved ones with
//! their `reserved:` labels, the others with the labels given them.

use std::path::Path;

use dpdbg::maps::{Identity, Maps};

use crate::output::{Printer, table};

const COL_ID: &str = "ID";
const COL_LABELS: &str = "LABELS";

#[derive(Debug, clap::Subcommand)]
pub enum IdentityCmd {
    /// Every identity with its labels (the reserved ones too).
    List,
    /// One identity's labels.
    Get {
        /// The identity.
        id: u32,
    },
    /// Give an identity its labels (replacing any it had).
    Add {
        /// The identity (256 or more: below are reserved).
        id: u32,
        /// A Kubernetes label KEY=VALUE (repeatable).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", required = true, value_parser = label)]
        labels: Vec<String>,
    },
    /// Forget an identity's labels.
    Delete {
        /// The identity.
        id: u32,
        /// Delete it though endpoints still have it.
        #[arg(long)]
        force: bool,
    },
}

/// A label as Kubernetes accepts it, else a usage error naming it.
pub(crate) fn label(s: &str) -> Result<String, String> {
    dpdbg::maps::names::check_label(s)?;
    Ok(s.to_string())
}

fn render(ids: &[Identity]) -> String {
    if ids.is_empty() {
        eprintln!("No entries found.");
        return String::new();
    }
    let mut t = table(&[COL_ID, COL_LABELS]);
    for i in ids {
        t.add_row(vec![i.id.to_string(), i.labels.join("\n")]);
    }
    t.to_string()
}

impl IdentityCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let maps = Maps::open(bpffs)?;
        match self {
            IdentityCmd::List => {
                let ids = maps.identity_list()?;
                p.print(&ids, || render(&ids))
            }
            IdentityCmd::Get { id } => match maps.identity_get(id)? {
                Some(i) => p.print(&i, || render(std::slice::from_ref(&i))),
                None => anyhow::bail!("identity {id} has no labels (see `dpdbg bpf identity list`)"),
            },
            IdentityCmd::Add { id, labels } => {
                if id < 256 {
                    crate::usage!(
                        "identity {id} is reserved (below 256: 1 host, 2 world): give labels to identities of 256 or more"
                    );
                }
                maps.identity_set(id, &labels).map_err(|e| match e {
                    e @ (dpdbg::Error::TooLong { .. }
                    | dpdbg::Error::BadLabel { .. }
                    | dpdbg::Error::ReservedIdentity { .. }) => {
                        anyhow::Error::new(crate::output::UsageError(e.to_string()))
                    }
                    e => anyhow::Error::new(e).context(format!("identity {id}")),
                })?;
                let i = maps.identity_get(id)?.unwrap_or(Identity { id, labels: vec![] });
                p.print(&i, || render(std::slice::from_ref(&i)))
            }
            IdentityCmd::Delete { id, force } => {
                let users: Vec<String> = maps
                    .endpoint_list()?
                    .into_iter()
                    .filter(|e| e.identity == id)
                    .map(|e| e.endpoint_id.to_string())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if !users.is_empty() && !force {
                    anyhow::bail!(
                        "identity {id} is in use by endpoint(s) {}: give them another identity first (`dpdbg bpf endpoint set ID --identity N`), or pass --force",
                        users.join(", ")
                    );
                }
                if !maps.identity_delete(id)? {
                    anyhow::bail!("identity {id} has no labels (see `dpdbg bpf identity list`)");
                }
                p.print(&serde_json::json!({"id": id, "deleted": true}), || format!("Identity {id}: labels deleted"))
            }
        }
    }
}
