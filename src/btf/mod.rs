//! A reader for BTF, the kernel's type format: enough to find a struct by
//! name with its size and member offsets (the ABI check), and to walk any
//! type a map's key or value is made of.

mod encode;
mod plan;

use std::collections::HashMap;

pub use encode::{EncodeError, EncodeOptions, encode, encode_with, parse_strict};
pub use plan::JsonPlan;

/// What can go wrong reading BTF.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The bytes do not start with the BTF magic.
    #[error("not BTF: bad magic {magic:#06x} (expected 0xeb9f)")]
    BadMagic { magic: u16 },
    /// A header, type or string reaches past the end of the data.
    #[error("BTF is truncated: {what} at offset {offset} runs past the end ({len} bytes)")]
    Truncated { what: &'static str, offset: usize, len: usize },
    /// The ELF file could not be parsed or has no .BTF section.
    #[error("{path}: {reason}")]
    Elf { path: String, reason: String },
    /// A kind number this reader does not know.
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    /// Offset in bits from the start of the struct.
    pub bit_offset: u32,
    /// Width in bits when the member is a bitfield, else 0.
    pub bitfield_size: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumValue {
    pub name: String,
    pub value: i64,
}

/// One BTF type, kinds as the kernel numbers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Void,
    Int { name: String, size: u32, signed: bool, is_char: bool, is_bool: bool, bits: u32, bit_offset: u32 },
    Ptr { target: u32 },
    Array { elem: u32, index: u32, len: u32 },
    Struct { name: String, size: u32, members: Vec<Member> },
    Union { name: String, size: u32, members: Vec<Member> },
    Enum { name: String, size: u32, signed: bool, values: Vec<EnumValue> },
    Fwd { name: String },
    Typedef { name: String, target: u32 },
    Volatile { target: u32 },
    Const { target: u32 },
    Restrict { target: u32 },
    Func { name: String, proto: u32 },
    FuncProto,
    Var { name: String, target: u32 },
    Datasec { name: String, size: u32, vars: Vec<(u32, u32, u32)> },
    Float { name: String, size: u32 },
    DeclTag { target: u32 },
    TypeTag { target: u32 },
}

/// A parsed BTF blob. Type ids index `types` (id 0 is void).
#[derive(Debug, Clone)]
pub struct Btf {
    types: Vec<Type>,
    by_name: HashMap<String, Vec<u32>>,
}

fn u32_at(d: &[u8], off: usize, what: &'static str) -> Result<u32, BtfError> {
    d.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(BtfError::Truncated {
        what,
        offset: off,
        len: d.len(),
    })
}

fn str_at(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or_default();
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

impl Btf {
    /// Parses raw BTF (as in /sys/kernel/btf/*, BPF_OBJ_GET_INFO_BY_FD or an ELF .BTF section).
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let magic = data.get(0..2).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0);
        if magic != 0xeb9f {
            return Err(BtfError::BadMagic { magic });
        }
        let hdr_len = u32_at(data, 4, "header")? as usize;
        let type_off = u32_at(data, 8, "header")? as usize;
        let type_len = u32_at(data, 12, "header")? as usize;
        let str_off = u32_at(data, 16, "header")? as usize;
        let str_len = u32_at(data, 20, "header")? as usize;
        let tstart = hdr_len + type_off;
        let sstart = hdr_len + str_off;
        let tsec = data.get(tstart..tstart + type_len).ok_or(BtfError::Truncated {
            what: "type section",
            offset: tstart,
            len: data.len(),
        })?;
        let strings = data.get(sstart..sstart + str_len).ok_or(BtfError::Truncated {
            what: "string section",
            offset: sstart,
            len: data.len(),
        })?;

        let mut types = vec![Type::Void];
        let mut off = 0;
        while off < tsec.len() {
            let id = types.len() as u32;
            let name = str_at(strings, u32_at(tsec, off, "type")?);
            let info = u32_at(tsec, off + 4, "type")?;
            let size_or_type = u32_at(tsec, off + 8, "type")?;
            off += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kflag = info >> 31 == 1;
            let t = match kind {
                1 => {
                    let enc = u32_at(tsec, off, "int")?;
                    off += 4;
                    Type::Int {
                        name,
                        size: size_or_type,
                        signed: enc >> 24 & 1 == 1,
                        is_char: enc >> 24 & 2 == 2,
                        is_bool: enc >> 24 & 4 == 4,
                        bits: enc & 0xff,
                        bit_offset: (enc >> 16) & 0xff,
                    }
                }
                2 => Type::Ptr { target: size_or_type },
                3 => {
                    let t = Type::Array {
                        elem: u32_at(tsec, off, "array")?,
                        index: u32_at(tsec, off + 4, "array")?,
                        len: u32_at(tsec, off + 8, "array")?,
                    };
                    off += 12;
                    t
                }
                4 | 5 => {
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let raw = u32_at(tsec, off + 8, "member")?;
                        members.push(Member {
                            name: str_at(strings, u32_at(tsec, off, "member")?),
                            type_id: u32_at(tsec, off + 4, "member")?,
                            bit_offset: if kflag { raw & 0xff_ffff } else { raw },
                            bitfield_size: if kflag { raw >> 24 } else { 0 },
                        });
                        off += 12;
                    }
                    if kind == 4 {
                        Type::Struct { name, size: size_or_type, members }
                    } else {
                        Type::Union { name, size: size_or_type, members }
                    }
                }
                6 | 19 => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let vname = str_at(strings, u32_at(tsec, off, "enum")?);
                        let lo = u32_at(tsec, off + 4, "enum")?;
                        let value = if kind == 6 {
                            off += 8;
                            if kflag { lo as i32 as i64 } else { lo as i64 }
                        } else {
                            let hi = u32_at(tsec, off + 8, "enum64")?;
                            off += 12;
                            ((hi as u64) << 32 | lo as u64) as i64
                        };
                        values.push(EnumValue { name: vname, value });
                    }
                    Type::Enum { name, size: size_or_type, signed: kflag, values }
                }
                7 => Type::Fwd { name },
                8 => Type::Typedef { name, target: size_or_type },
                9 => Type::Volatile { target: size_or_type },
                10 => Type::Const { target: size_or_type },
                11 => Type::Restrict { target: size_or_type },
                12 => Type::Func { name, proto: size_or_type },
                13 => {
                    off += 8 * vlen;
                    Type::FuncProto
                }
                14 => {
                    off += 4;
                    Type::Var { name, target: size_or_type }
                }
                15 => {
                    let mut vars = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        vars.push((
                            u32_at(tsec, off, "datasec")?,
                            u32_at(tsec, off + 4, "datasec")?,
                            u32_at(tsec, off + 8, "datasec")?,
                        ));
                        off += 12;
                    }
                    Type::Datasec { name, size: size_or_type, vars }
                }
                16 => Type::Float { name, size: size_or_type },
                17 => {
                    off += 4;
                    Type::DeclTag { target: size_or_type }
                }
                18 => Type::TypeTag { target: size_or_type },
                k => return Err(BtfError::UnknownKind { id, kind: k }),
            };
            types.push(t);
        }

        let mut by_name: HashMap<String, Vec<u32>> = HashMap::new();
        for (id, t) in types.iter().enumerate() {
            let name = match t {
                Type::Struct { name, .. }
                | Type::Union { name, .. }
                | Type::Enum { name, .. }
                | Type::Typedef { name, .. }
                | Type::Int { name, .. }
                | Type::Var { name, .. }
                | Type::Datasec { name, .. } => name,
                _ => continue,
            };
            if !name.is_empty() {
                by_name.entry(name.clone()).or_default().push(id as u32);
            }
        }
        Ok(Btf { types, by_name })
    }

    /// Reads the .BTF section of an ELF object (a compiled BPF program).
    pub fn from_elf(data: &[u8], path: &str) -> Result<Btf, BtfError> {
        use object::{Object, ObjectSection};
        let elf = |reason: String| BtfError::Elf { path: path.to_string(), reason };
        let file = object::File::parse(data).map_err(|e| elf(format!("not an ELF object: {e}")))?;
        let sec = file.section_by_name(".BTF").ok_or_else(|| elf("no .BTF section (compile with -g)".into()))?;
        let bytes = sec.data().map_err(|e| elf(format!("reading .BTF: {e}")))?;
        Btf::parse(bytes)
    }

    pub fn get(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    /// Follows typedefs and qualifiers to the type that gives the layout.
    pub fn resolve(&self, mut id: u32) -> (u32, Option<&Type>) {
        for _ in 0..32 {
            match self.get(id) {
                Some(Type::Typedef { target, .. })
                | Some(Type::Volatile { target })
                | Some(Type::Const { target })
                | Some(Type::Restrict { target })
                | Some(Type::TypeTag { target }) => id = *target,
                t => return (id, t),
            }
        }
        (id, None)
    }

    /// Size in bytes of a type, as the kernel computes it.
    pub fn size_of(&self, id: u32) -> Option<u32> {
        match self.resolve(id).1? {
            Type::Int { size, .. }
            | Type::Struct { size, .. }
            | Type::Union { size, .. }
            | Type::Enum { size, .. }
            | Type::Float { size, .. }
            | Type::Datasec { size, .. } => Some(*size),
            Type::Ptr { .. } => Some(8),
            Type::Array { elem, len, .. } => Some(self.size_of(*elem)? * len),
            Type::Var { target, .. } => self.size_of(*target),
            _ => None,
        }
    }

    /// The first struct with this name.
    pub fn find_struct(&self, name: &str) -> Option<(u32, u32, &[Member])> {
        self.by_name.get(name)?.iter().find_map(|&id| match self.get(id) {
            Some(Type::Struct { size, members, .. }) => Some((id, *size, members.as_slice())),
            _ => None,
        })
    }

    /// The ids of every type with this name.
    pub fn ids_by_name(&self, name: &str) -> &[u32] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(Btf::parse(b""), Err(BtfError::BadMagic { .. })));
        assert!(matches!(Btf::parse(&[0x9f, 0xeb, 1, 0]), Err(BtfError::Truncated { .. })));
        let mut hdr = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(Btf::parse(&hdr), Err(BtfError::Truncated { .. })));
        // A type record cut short inside the type section.
        hdr[12] = 4;
        hdr.extend_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(Btf::parse(&hdr), Err(BtfError::Truncated { .. })));
    }

    #[test]
    fn kernel_btf_parses() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("the kernel exposes its BTF");
        let btf = Btf::parse(&data).unwrap();
        let (_, size, members) = btf.find_struct("__sk_buff").unwrap();
        assert_eq!(size, 192);
        assert_eq!(members[0].name, "len");
        assert_eq!(members[0].bit_offset, 0);
    }
}
