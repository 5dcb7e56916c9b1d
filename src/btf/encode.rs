//! JSON → bytes through BTF, for `map update`/`get`/`delete`: every field
//! checked against its type, so a typo is an error, not a corrupt entry.

use serde_json::Value;

use super::{Btf, Type};

/// Why a JSON value does not fit the map's type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The JSON has the wrong shape for the type at `path`.
    #[error("{path}: expected {expected}, got {got}")]
    Mismatch { path: String, expected: String, got: String },
    /// A number does not fit its field.
    #[error("{path}: {value} does not fit in {bits} bits{}", if *signed { " (signed)" } else { "" })]
    OutOfRange { path: String, value: String, bits: u32, signed: bool },
    /// An enum value by a name the enum does not have.
    #[error("{path}: unknown enum value {name:?} (known: {known})")]
    UnknownEnum { path: String, name: String, known: String },
    /// A struct field that the type does not have.
    #[error("{path}: no field {field:?} (fields: {known})")]
    UnknownField { path: String, field: String, known: String },
    /// An array or string of the wrong length.
    #[error("{path}: {len} elements for an array of {expected}")]
    BadLength { path: String, len: usize, expected: usize },
    /// A type this encoder cannot build from JSON.
    #[error("{path}: cannot set a value of this type from JSON ({kind})")]
    Unsupported { path: String, kind: String },
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
    .to_string()
}

fn int_from(v: &Value, path: &str, bits: u32, signed: bool) -> Result<u64, EncodeError> {
    let out_of_range = |value: String| EncodeError::OutOfRange { path: path.to_string(), value, bits, signed };
    let n: i128 = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u as i128
            } else if let Some(i) = n.as_i64() {
                i as i128
            } else {
                return Err(EncodeError::Mismatch {
                    path: path.into(),
                    expected: "an integer".into(),
                    got: n.to_string(),
                });
            }
        }
        Value::String(s) if s.starts_with("0x") => i128::from_str_radix(&s[2..], 16).map_err(|_| {
            EncodeError::Mismatch { path: path.into(), expected: "an integer".into(), got: format!("{s:?}") }
        })?,
        Value::Bool(b) => *b as i128,
        other => {
            return Err(EncodeError::Mismatch {
                path: path.into(),
                expected: "an integer".into(),
                got: kind_of(other),
            });
        }
    };
    let (min, max) =
        if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
    if n < min || n > max {
        return Err(out_of_range(n.to_string()));
    }
    Ok(n as u64)
}

fn put(out: &mut [u8], off: usize, size: usize, v: u64) {
    out[off..off + size].copy_from_slice(&v.to_le_bytes()[..size]);
}

fn put_bits(out: &mut [u8], bit: usize, bits: u32, v: u64) {
    for i in 0..bits as usize {
        let b = bit + i;
        let set = (v >> i) & 1 == 1;
        if set {
            out[b / 8] |= 1 << (b % 8);
        } else {
            out[b / 8] &= !(1 << (b % 8));
        }
    }
}

/// Encodes `v` as BTF type `id` into a buffer of the type's size.
pub fn encode(btf: &Btf, id: u32, v: &Value) -> Result<Vec<u8>, EncodeError> {
    let size = btf.size_of(id).unwrap_or(0) as usize;
    let mut out = vec![0u8; size];
    fill(btf, id, v, &mut out, 0, "")?;
    Ok(out)
}

fn fill(btf: &Btf, id: u32, v: &Value, out: &mut [u8], off: usize, path: &str) -> Result<(), EncodeError> {
    let here = if path.is_empty() { "value".to_string() } else { path.to_string() };
    let (_, t) = btf.resolve(id);
    match t {
        Some(Type::Int { size, signed, bits, .. }) => {
            let bits_n = if *bits == 0 { size * 8 } else { (*bits).min(size * 8) };
            let n = int_from(v, &here, bits_n, *signed)?;
            put(out, off, *size as usize, n);
        }
        Some(Type::Ptr { .. }) => put(out, off, 8, int_from(v, &here, 64, false)?),
        Some(Type::Enum { size, signed, values, .. }) => {
            let n = match v {
                Value::String(s) if !s.starts_with("0x") => {
                    values.iter().find(|e| &e.name == s).map(|e| e.value as u64).ok_or_else(|| {
                        EncodeError::UnknownEnum {
                            path: here.clone(),
                            name: s.clone(),
                            known: values.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", "),
                        }
                    })?
                }
                other => int_from(other, &here, size * 8, *signed)?,
            };
            put(out, off, *size as usize, n);
        }
        Some(Type::Float { size, .. }) => {
            let f = v.as_f64().ok_or_else(|| EncodeError::Mismatch {
                path: here.clone(),
                expected: "a number".into(),
                got: kind_of(v),
            })?;
            if *size == 4 { put(out, off, 4, (f as f32).to_bits() as u64) } else { put(out, off, 8, f.to_bits()) }
        }
        Some(Type::Array { elem, len, .. }) => {
            let (elem, len) = (*elem, *len as usize);
            let esize = btf.size_of(elem).unwrap_or(0) as usize;
            match v {
                Value::String(s) if esize == 1 => {
                    if s.len() > len {
                        return Err(EncodeError::BadLength { path: here, len: s.len(), expected: len });
                    }
                    out[off..off + s.len()].copy_from_slice(s.as_bytes());
                }
                Value::Array(items) => {
                    if items.len() != len {
                        return Err(EncodeError::BadLength { path: here, len: items.len(), expected: len });
                    }
                    for (i, item) in items.iter().enumerate() {
                        fill(btf, elem, item, out, off + i * esize, &format!("{here}[{i}]"))?;
                    }
                }
                other => {
                    return Err(EncodeError::Mismatch {
                        path: here,
                        expected: format!("an array of {len}"),
                        got: kind_of(other),
                    });
                }
            }
        }
        Some(Type::Struct { members, .. }) | Some(Type::Union { members, .. }) => {
            let Value::Object(fields) = v else {
                return Err(EncodeError::Mismatch { path: here, expected: "an object".into(), got: kind_of(v) });
            };
            let mut flat = Vec::new();
            flatten(btf, members, 0, &mut flat);
            for (name, fv) in fields {
                let Some((_, m_bit, m_type, m_bits)) = flat.iter().find(|(n, ..)| n == name) else {
                    return Err(EncodeError::UnknownField {
                        path: here,
                        field: name.clone(),
                        known: flat.iter().map(|(n, ..)| n.as_str()).collect::<Vec<_>>().join(", "),
                    });
                };
                let fpath = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                if *m_bits > 0 {
                    let signed = matches!(btf.resolve(*m_type).1, Some(Type::Int { signed: true, .. }));
                    let n = int_from(fv, &fpath, *m_bits, signed)?;
                    put_bits(out, off * 8 + *m_bit as usize, *m_bits, n);
                } else {
                    fill(btf, *m_type, fv, out, off + (*m_bit / 8) as usize, &fpath)?;
                }
            }
        }
        other => {
            return Err(EncodeError::Unsupported { path: here, kind: format!("{other:?}") });
        }
    }
    Ok(())
}

/// (name, bit offset, type, bitfield bits) of every named member, anonymous
/// inner structs and unions flattened into their parent.
fn flatten(btf: &Btf, members: &[super::Member], base_bit: u32, out: &mut Vec<(String, u32, u32, u32)>) {
    for m in members {
        if m.name.is_empty()
            && let (_, Some(Type::Struct { members: inner, .. }) | Some(Type::Union { members: inner, .. })) =
                btf.resolve(m.type_id)
        {
            flatten(btf, inner, base_bit + m.bit_offset, out);
            continue;
        }
        out.push((m.name.clone(), base_bit + m.bit_offset, m.type_id, m.bitfield_size));
    }
}
