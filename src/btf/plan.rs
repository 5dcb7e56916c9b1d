//! Turns a BTF type into a flat list of steps that renders a value of that
//! type as JSON. The type is walked once per map, not once per entry, so a
//! dump of a million entries spends its time writing numbers, not matching
//! on type kinds.

use super::{Btf, Type};

#[derive(Clone, Debug)]
enum Step {
    /// Literal JSON text (braces, keys, commas).
    Lit(String),
    Uint {
        off: usize,
        size: u8,
    },
    Int {
        off: usize,
        size: u8,
    },
    Bool {
        off: usize,
    },
    /// A 128-bit integer: a hex string, as bpftool prints it.
    Int128 {
        off: usize,
    },
    /// A bitfield: `bits` wide at bit `bit` of the value.
    Bits {
        bit: usize,
        bits: u8,
        signed: bool,
    },
    /// char[N]: a string up to the first NUL.
    Str {
        off: usize,
        len: usize,
        signed: bool,
    },
    Enum {
        off: usize,
        size: u8,
        signed: bool,
        names: usize,
    },
    F32 {
        off: usize,
    },
    F64 {
        off: usize,
    },
    /// Bytes we cannot decode: hex strings, as bpftool prints raw bytes.
    Hex {
        off: usize,
        len: usize,
    },
}

/// How to print one type; built once, run for every entry.
#[derive(Clone, Debug)]
pub struct JsonPlan {
    steps: Vec<Step>,
    enum_names: Vec<Vec<(i64, String)>>,
    pub size: usize,
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

struct Builder<'a> {
    btf: &'a Btf,
    steps: Vec<Step>,
    enum_names: Vec<Vec<(i64, String)>>,
}

impl Builder<'_> {
    fn lit(&mut self, s: &str) {
        if let Some(Step::Lit(prev)) = self.steps.last_mut() {
            prev.push_str(s);
        } else {
            self.steps.push(Step::Lit(s.to_string()));
        }
    }

    fn is_char(&self, id: u32) -> bool {
        matches!(self.btf.resolve(id).1, Some(Type::Int { size: 1, is_char: true, .. }))
            || matches!(self.btf.resolve(id).1, Some(Type::Int { size: 1, name, .. }) if name == "char")
    }

    fn add(&mut self, id: u32, off: usize, depth: u32) {
        if depth > 32 {
            self.lit("null");
            return;
        }
        let (_, t) = self.btf.resolve(id);
        match t {
            Some(Type::Int { size, signed, is_bool, bits, bit_offset, .. }) => {
                let size = *size as u8;
                if *bits != 0 && (*bits as u8) < size * 8 || *bit_offset != 0 {
                    self.steps.push(Step::Bits {
                        bit: off * 8 + *bit_offset as usize,
                        bits: *bits as u8,
                        signed: *signed,
                    });
                } else if size > 8 {
                    self.steps.push(Step::Int128 { off });
                } else if *is_bool {
                    self.steps.push(Step::Bool { off });
                } else if *signed {
                    self.steps.push(Step::Int { off, size });
                } else {
                    self.steps.push(Step::Uint { off, size });
                }
            }
            Some(Type::Ptr { .. }) => self.steps.push(Step::Uint { off, size: 8 }),
            Some(Type::Enum { size, signed, values, .. }) => {
                self.enum_names.push(values.iter().map(|v| (v.value, json_string(&v.name))).collect());
                let names = self.enum_names.len() - 1;
                self.steps.push(Step::Enum { off, size: *size as u8, signed: *signed, names });
            }
            Some(Type::Float { size: 4, .. }) => self.steps.push(Step::F32 { off }),
            Some(Type::Float { size: 8, .. }) => self.steps.push(Step::F64 { off }),
            Some(Type::Array { elem, len, .. }) => {
                let (elem, len) = (*elem, *len as usize);
                if self.is_char(elem) {
                    let signed = matches!(self.btf.resolve(elem).1, Some(Type::Int { signed: true, .. }));
                    self.steps.push(Step::Str { off, len, signed });
                    return;
                }
                let esize = self.btf.size_of(elem).unwrap_or(0) as usize;
                self.lit("[");
                for i in 0..len {
                    if i > 0 {
                        self.lit(",");
                    }
                    self.add(elem, off + i * esize, depth + 1);
                }
                self.lit("]");
            }
            Some(Type::Struct { members, .. }) | Some(Type::Union { members, .. }) => {
                let members = members.clone();
                self.lit("{");
                let mut first = true;
                self.members(&members, off, depth, &mut first);
                self.lit("}");
            }
            Some(other) => {
                let len = self.btf.size_of(id).unwrap_or(0) as usize;
                let _ = other;
                self.steps.push(Step::Hex { off, len });
            }
            None => self.lit("null"),
        }
    }

    /// Members of a struct or union; anonymous inner ones are flattened.
    fn members(&mut self, members: &[super::Member], off: usize, depth: u32, first: &mut bool) {
        for m in members {
            let moff = off + (m.bit_offset / 8) as usize;
            if m.name.is_empty() {
                let (_, t) = self.btf.resolve(m.type_id);
                if let Some(Type::Struct { members: inner, .. }) | Some(Type::Union { members: inner, .. }) = t {
                    let inner = inner.clone();
                    self.members(&inner, moff, depth + 1, first);
                    continue;
                }
            }
            if !*first {
                self.lit(",");
            }
            *first = false;
            self.lit(&json_string(&m.name));
            self.lit(":");
            if m.bitfield_size > 0 {
                let signed = matches!(self.btf.resolve(m.type_id).1, Some(Type::Int { signed: true, .. }));
                self.steps.push(Step::Bits {
                    bit: off * 8 + m.bit_offset as usize,
                    bits: m.bitfield_size as u8,
                    signed,
                });
            } else {
                self.add(m.type_id, moff, depth + 1);
            }
        }
    }
}

fn rd(data: &[u8], off: usize, size: usize) -> u64 {
    let mut b = [0u8; 8];
    let size = size.min(8);
    if let Some(s) = data.get(off..off + size) {
        b[..size].copy_from_slice(s);
    }
    u64::from_ne_bytes(b)
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64u32.saturating_sub(bits.clamp(1, 64));
    ((v << shift) as i64) >> shift
}

impl JsonPlan {
    pub fn new(btf: &Btf, type_id: u32) -> JsonPlan {
        let mut b = Builder { btf, steps: Vec::new(), enum_names: Vec::new() };
        b.add(type_id, 0, 0);
        JsonPlan { steps: b.steps, enum_names: b.enum_names, size: btf.size_of(type_id).unwrap_or(0) as usize }
    }

    /// Renders raw bytes as bpftool does without BTF: ["0x0a","0x00",…].
    pub fn hex(size: usize) -> JsonPlan {
        JsonPlan { steps: vec![Step::Hex { off: 0, len: size }], enum_names: vec![], size }
    }

    /// Appends the JSON for `data` (which holds at least `size` bytes; short data reads as zeros).
    pub fn write(&self, data: &[u8], out: &mut Vec<u8>) {
        let mut ib = itoa::Buffer::new();
        for s in &self.steps {
            match s {
                Step::Lit(l) => out.extend_from_slice(l.as_bytes()),
                Step::Uint { off, size } => out.extend_from_slice(ib.format(rd(data, *off, *size as usize)).as_bytes()),
                Step::Int { off, size } => {
                    let v = sign_extend(rd(data, *off, *size as usize), *size as u32 * 8);
                    out.extend_from_slice(ib.format(v).as_bytes())
                }
                Step::Bool { off } => out.extend_from_slice(if rd(data, *off, 1) != 0 { b"true" } else { b"false" }),
                Step::Int128 { off } => {
                    let mut b = [0u8; 16];
                    if let Some(s) = data.get(*off..*off + 16) {
                        b.copy_from_slice(s);
                    }
                    out.extend_from_slice(format!("\"{:#x}\"", u128::from_ne_bytes(b)).as_bytes());
                }
                Step::Bits { bit, bits, signed } => {
                    let start = bit / 8;
                    let shift = bit % 8;
                    let mut b = [0u8; 16];
                    let n = (shift + *bits as usize).div_ceil(8).min(16);
                    if let Some(s) = data.get(start..start + n) {
                        b[..n].copy_from_slice(s);
                    }
                    let raw = u128::from_le_bytes(b) >> shift;
                    let mask = if *bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    let v = raw as u64 & mask;
                    if *signed && *bits > 0 && *bits < 64 {
                        out.extend_from_slice(ib.format(sign_extend(v, *bits as u32)).as_bytes());
                    } else {
                        out.extend_from_slice(ib.format(v).as_bytes());
                    }
                }
                Step::Str { off, len, signed } => {
                    let raw = data.get(*off..*off + *len).unwrap_or_default();
                    // A string as bpftool sees one: printable up to a NUL that
                    // is there; anything else is an array of numbers, so it
                    // reads back into the same bytes.
                    match raw.iter().position(|&c| c == 0) {
                        Some(end) if raw.len() == *len && raw[..end].iter().all(|c| (0x20..0x7f).contains(c)) => {
                            let s = std::str::from_utf8(&raw[..end]).unwrap_or_default();
                            out.extend_from_slice(json_string(s).as_bytes());
                        }
                        _ => {
                            out.push(b'[');
                            for i in 0..*len {
                                if i > 0 {
                                    out.push(b',');
                                }
                                let b = raw.get(i).copied().unwrap_or(0);
                                if *signed {
                                    out.extend_from_slice(ib.format(b as i8).as_bytes());
                                } else {
                                    out.extend_from_slice(ib.format(b).as_bytes());
                                }
                            }
                            out.push(b']');
                        }
                    }
                }
                Step::Enum { off, size, signed, names } => {
                    let raw = rd(data, *off, *size as usize);
                    let v = if *signed { sign_extend(raw, *size as u32 * 8) } else { raw as i64 };
                    match self.enum_names[*names].iter().find(|(val, _)| *val == v) {
                        Some((_, name)) => out.extend_from_slice(name.as_bytes()),
                        None => out.extend_from_slice(ib.format(v).as_bytes()),
                    }
                }
                Step::F32 { off } => {
                    let v = f32::from_bits(rd(data, *off, 4) as u32);
                    out.extend_from_slice(serde_json::to_string(&v).unwrap_or_else(|_| "null".into()).as_bytes())
                }
                Step::F64 { off } => {
                    let v = f64::from_bits(rd(data, *off, 8));
                    out.extend_from_slice(serde_json::to_string(&v).unwrap_or_else(|_| "null".into()).as_bytes())
                }
                Step::Hex { off, len } => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.push(b'[');
                    for i in 0..*len {
                        if i > 0 {
                            out.push(b',');
                        }
                        let b = data.get(off + i).copied().unwrap_or(0);
                        out.extend_from_slice(&[
                            b'"',
                            b'0',
                            b'x',
                            HEX[(b >> 4) as usize],
                            HEX[(b & 15) as usize],
                            b'"',
                        ]);
                    }
                    out.push(b']');
                }
            }
        }
    }

    /// The value as a serde_json::Value (for tests and small outputs).
    pub fn to_value(&self, data: &[u8]) -> serde_json::Value {
        let mut out = Vec::new();
        self.write(data, &mut out);
        serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
    }
}
