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
    /// Struct fields the JSON leaves out (allowed with --partial).
    #[error("{path}: missing {missing} (give every field, or pass --partial to leave the rest zero)")]
    MissingFields { path: String, missing: String },
    /// The same key twice in one JSON object.
    #[error("{path}: key {key:?} is given twice")]
    DuplicateKey { path: String, key: String },
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

/// The integer `v` as the two's-complement bits of a `bits`-wide field (up
/// to 128). JSON numbers, "0x…" strings and decimal strings (for values
/// wider than JSON numbers go) are taken; booleans only where `boolean`.
fn int_from(v: &Value, path: &str, bits: u32, signed: bool, boolean: bool) -> Result<u128, EncodeError> {
    let bits = bits.clamp(1, 128);
    let mismatch = |got: String| EncodeError::Mismatch { path: path.into(), expected: "an integer".into(), got };
    let (neg, mag): (bool, u128) = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                (false, u as u128)
            } else if let Some(i) = n.as_i64() {
                (i < 0, i.unsigned_abs() as u128)
            } else {
                return Err(mismatch(n.to_string()));
            }
        }
        Value::String(s) => {
            let (neg, digits) = match s.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, s.as_str()),
            };
            let parsed = match digits.strip_prefix("0x") {
                Some(h) => u128::from_str_radix(h, 16),
                None => digits.parse::<u128>(),
            };
            (neg, parsed.map_err(|_| mismatch(format!("{s:?}")))?)
        }
        Value::Bool(b) if boolean => (false, *b as u128),
        other => return Err(mismatch(kind_of(other))),
    };
    let out_of_range = || EncodeError::OutOfRange {
        path: path.to_string(),
        value: format!("{}{mag}", if neg { "-" } else { "" }),
        bits,
        signed,
    };
    let mask = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
    // Hex is the field's bits, as bpftool prints wide integers: for a signed
    // field "0xff…fb" is -5, not a number too large.
    if !neg && matches!(v, Value::String(s) if s.starts_with("0x")) {
        return if mag > mask { Err(out_of_range()) } else { Ok(mag) };
    }
    if !signed {
        if neg && mag != 0 || mag > mask {
            return Err(out_of_range());
        }
        return Ok(mag);
    }
    let limit = 1u128 << (bits - 1);
    if (neg && mag > limit) || (!neg && mag >= limit) {
        return Err(out_of_range());
    }
    Ok(if neg { mag.wrapping_neg() & mask } else { mag })
}

fn put(out: &mut [u8], off: usize, size: usize, v: u128) {
    let size = size.min(16);
    out[off..off + size].copy_from_slice(&v.to_le_bytes()[..size]);
}

fn put_bits(out: &mut [u8], bit: usize, bits: u32, v: u128) {
    for i in 0..bits.min(128) as usize {
        let b = bit + i;
        let set = (v >> i) & 1 == 1;
        if set {
            out[b / 8] |= 1 << (b % 8);
        } else {
            out[b / 8] &= !(1 << (b % 8));
        }
    }
}

/// How strictly a struct is read from JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Fields left out are zero (`--partial`); by default every field must
    /// be given, so a forgotten one is an error rather than a silent zero.
    pub partial: bool,
    /// What errors call the whole value ("key" or "value"; "value" when unset).
    pub root: Option<&'static str>,
}

/// Padding members need not be given: nobody means a value for them.
fn is_padding(name: &str) -> bool {
    name.is_empty() || name.starts_with("pad") || name.starts_with("__pad") || name.starts_with("_pad")
}

/// Encodes `v` as BTF type `id` into a buffer of the type's size.
pub fn encode(btf: &Btf, id: u32, v: &Value) -> Result<Vec<u8>, EncodeError> {
    encode_with(btf, id, v, EncodeOptions::default())
}

pub fn encode_with(btf: &Btf, id: u32, v: &Value, opts: EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let size = btf.size_of(id).unwrap_or(0) as usize;
    let mut out = vec![0u8; size];
    fill(btf, id, v, &mut out, 0, "", opts, 0)?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn fill(
    btf: &Btf,
    id: u32,
    v: &Value,
    out: &mut [u8],
    off: usize,
    path: &str,
    opts: EncodeOptions,
    depth: u32,
) -> Result<(), EncodeError> {
    if depth > 32 {
        return Err(EncodeError::Unsupported { path: path.into(), kind: "types nested deeper than 32".into() });
    }
    let here = if path.is_empty() { opts.root.unwrap_or("value").to_string() } else { path.to_string() };
    let (_, t) = btf.resolve(id);
    match t {
        Some(Type::Int { size, signed, bits, is_bool, .. }) => {
            let bits_n = if *bits == 0 { size * 8 } else { (*bits).min(size * 8) };
            let n = int_from(v, &here, bits_n, *signed, *is_bool)?;
            put(out, off, *size as usize, n);
        }
        Some(Type::Ptr { .. }) => put(out, off, 8, int_from(v, &here, 64, false, false)?),
        Some(Type::Enum { size, signed, values, .. }) => {
            let n = match v {
                Value::String(s) if !s.starts_with("0x") => {
                    values.iter().find(|e| &e.name == s).map(|e| e.value as u64 as u128).ok_or_else(|| {
                        EncodeError::UnknownEnum {
                            path: here.clone(),
                            name: s.clone(),
                            known: values.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", "),
                        }
                    })?
                }
                other => int_from(other, &here, size * 8, *signed, false)?,
            };
            put(out, off, *size as usize, n & if *size >= 8 { u64::MAX as u128 } else { (1u128 << (size * 8)) - 1 });
        }
        Some(Type::Float { size, .. }) => {
            let f = v.as_f64().ok_or_else(|| EncodeError::Mismatch {
                path: here.clone(),
                expected: "a number".into(),
                got: kind_of(v),
            })?;
            if *size == 4 {
                put(out, off, 4, (f as f32).to_bits() as u128)
            } else {
                put(out, off, 8, f.to_bits() as u128)
            }
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
                        fill(btf, elem, item, out, off + i * esize, &format!("{here}[{i}]"), opts, depth + 1)?;
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
        Some(t @ (Type::Struct { members, .. } | Type::Union { members, .. })) => {
            let Value::Object(fields) = v else {
                return Err(EncodeError::Mismatch { path: here, expected: "an object".into(), got: kind_of(v) });
            };
            let mut flat = Vec::new();
            flatten(btf, members, 0, &mut flat, 0);
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
                    let (_, mt) = btf.resolve(*m_type);
                    let signed = matches!(mt, Some(Type::Int { signed: true, .. }));
                    let boolean = matches!(mt, Some(Type::Int { is_bool: true, .. }));
                    let n = int_from(fv, &fpath, *m_bits, signed, boolean)?;
                    put_bits(out, off * 8 + *m_bit as usize, *m_bits, n);
                } else {
                    fill(btf, *m_type, fv, out, off + (*m_bit / 8) as usize, &fpath, opts, depth + 1)?;
                }
            }
            // A struct needs every field (a union, one of them) unless --partial.
            if !opts.partial {
                let missing: Vec<&str> = flat
                    .iter()
                    .map(|(n, ..)| n.as_str())
                    .filter(|n| !is_padding(n) && !fields.contains_key(*n))
                    .collect();
                let union = matches!(t, Type::Union { .. });
                if (!union && !missing.is_empty()) || (union && fields.is_empty() && !flat.is_empty()) {
                    return Err(EncodeError::MissingFields { path: here, missing: missing.join(", ") });
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
fn flatten(btf: &Btf, members: &[super::Member], base_bit: u32, out: &mut Vec<(String, u32, u32, u32)>, depth: u32) {
    for m in members {
        if m.name.is_empty()
            && depth < 32
            && let (_, Some(Type::Struct { members: inner, .. }) | Some(Type::Union { members: inner, .. })) =
                btf.resolve(m.type_id)
        {
            flatten(btf, inner, base_bit + m.bit_offset, out, depth + 1);
            continue;
        }
        out.push((m.name.clone(), base_bit + m.bit_offset, m.type_id, m.bitfield_size));
    }
}

/// JSON as serde_json reads it, except that a key given twice in one object
/// is an error (serde_json would keep the last one without a word).
pub fn parse_strict(s: &str) -> Result<Value, String> {
    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

    struct Strict;

    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(Strict)? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some(k) = map.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(de::Error::custom(format!("key {k:?} is given twice")));
                }
                let v = map.next_value_seed(Strict)?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        }
    }

    let mut de = serde_json::Deserializer::from_str(s);
    let v = Strict.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}
