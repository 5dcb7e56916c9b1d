//! A program's translated instructions (`bpftool prog dump xlated`): what the
//! verifier left after its rewrites, fetched with BPF_OBJ_GET_INFO_BY_FD and
//! disassembled in the kernel's own notation (kernel/bpf/disasm.c, as
//! bpftool prints it), with helper calls named from /proc/kallsyms and map
//! references named from their map ids.
//!
//! Written here rather than taken from a crate: rbpf's disassembler speaks
//! its own notation (`ldxw r2, [r1+0x4]`), and the operator comparing with
//! bpftool or a verifier log wants the kernel's (`r2 = *(u32 *)(r1 +4)`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::path::Path;

use serde::Serialize;

use crate::datapath::Pins;
use crate::syscall as raw;
use crate::{Error, Result, sys};

/// One `struct bpf_insn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// From the 8 bytes the kernel hands out (host order; registers packed
    /// dst in the low nibble on little-endian hosts).
    pub fn from_bytes(b: &[u8]) -> Insn {
        let regs = b[1];
        let (dst, src) = if cfg!(target_endian = "little") { (regs & 0xf, regs >> 4) } else { (regs >> 4, regs & 0xf) };
        Insn {
            code: b[0],
            dst,
            src,
            off: i16::from_ne_bytes([b[2], b[3]]),
            imm: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;

const BPF_X: u8 = 0x08;
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_ABS: u8 = 0x20;
const BPF_IND: u8 = 0x40;
const BPF_MEM: u8 = 0x60;
const BPF_MEMSX: u8 = 0x80;
const BPF_ATOMIC: u8 = 0xc0;
const BPF_NOSPEC: u8 = 0xc0;

const BPF_DIV: u8 = 0x30;
const BPF_NEG: u8 = 0x80;
const BPF_MOD: u8 = 0x90;
const BPF_MOV: u8 = 0xb0;
const BPF_END: u8 = 0xd0;

const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
const BPF_JCOND: u8 = 0xe0;

const BPF_FETCH: i32 = 0x01;
const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;
const BPF_LOAD_ACQ: i32 = 0x100;
const BPF_STORE_REL: i32 = 0x110;

/// ld_imm64 source registers: what the 64-bit immediate is.
pub const PSEUDO_MAP_FD: u8 = 1;
pub const PSEUDO_MAP_VALUE: u8 = 2;
pub const PSEUDO_MAP_IDX_VALUE: u8 = 6;
/// A call's source register: a call to a function of the same program.
pub const PSEUDO_CALL: u8 = 1;

fn class_name(c: u8) -> &'static str {
    ["ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64"][c as usize & 7]
}

fn alu_op(op: u8) -> &'static str {
    match op >> 4 {
        0x0 => "+=",
        0x1 => "-=",
        0x2 => "*=",
        0x3 => "/=",
        0x4 => "|=",
        0x5 => "&=",
        0x6 => "<<=",
        0x7 => ">>=",
        0x8 => "neg",
        0x9 => "%=",
        0xa => "^=",
        0xb => "=",
        0xc => "s>>=",
        0xd => "endian",
        _ => "(null)",
    }
}

fn jmp_op(op: u8) -> &'static str {
    match op >> 4 {
        0x0 => "jmp",
        0x1 => "==",
        0x2 => ">",
        0x3 => ">=",
        0x4 => "&",
        0x5 => "!=",
        0x6 => "s>",
        0x7 => "s>=",
        0x8 => "call",
        0x9 => "exit",
        0xa => "<",
        0xb => "<=",
        0xc => "s<",
        0xd => "s<=",
        _ => "(null)",
    }
}

fn ldst(code: u8) -> &'static str {
    ["u32", "u16", "u8", "u64"][((code & 0x18) >> 3) as usize]
}

fn ldsx(code: u8) -> &'static str {
    ["s32", "s16", "s8", "(null)"][((code & 0x18) >> 3) as usize]
}

fn atomic_alu(imm: i32) -> &'static str {
    match (imm as u8 & 0xf0) >> 4 {
        0x0 => "add",
        0x4 => "or",
        0x5 => "and",
        0xa => "xor",
        _ => "(null)",
    }
}

/// What the disassembler asks of its caller: names for calls and for the
/// immediates of ld_imm64 (bpftool's callbacks).
pub trait Names {
    /// The text after `call ` (helpers) or `call pc` (functions of the program).
    fn call(&self, insn: &Insn) -> String;
    /// The text of a 64-bit immediate.
    fn imm64(&self, insn: &Insn, full: u64) -> String;
}

/// Plain numbers, as the kernel prints without callbacks.
pub struct NoNames;

impl Names for NoNames {
    fn call(&self, insn: &Insn) -> String {
        if insn.src == PSEUDO_CALL { format!("{:+}", insn.imm) } else { "unknown".into() }
    }
    fn imm64(&self, _: &Insn, full: u64) -> String {
        format!("{full:#x}")
    }
}

/// One instruction as the kernel's disassembler writes it: `(bf) r5 = r1`.
/// `next` is the instruction after it (the second half of an ld_imm64).
pub fn disasm(insn: &Insn, next: Option<&Insn>, names: &dyn Names) -> String {
    let c = insn.code;
    let class = c & 7;
    let op = c & 0xf0;
    let mode = c & 0xe0;
    let (d, s, off, imm) = (insn.dst, insn.src, insn.off, insn.imm);
    let w = |alu32: bool| if alu32 { 'w' } else { 'r' };
    match class {
        BPF_ALU | BPF_ALU64 => {
            let r = w(class == BPF_ALU);
            if op == BPF_END {
                if class == BPF_ALU64 {
                    format!("({c:02x}) r{d} = bswap{imm} r{d}")
                } else {
                    format!("({c:02x}) r{d} = {}{imm} r{d}", if c & BPF_X != 0 { "be" } else { "le" })
                }
            } else if op == BPF_NEG {
                format!("({c:02x}) {r}{d} = -{r}{d}")
            } else if c == BPF_ALU64 | BPF_MOV | BPF_X && off == 1 {
                format!("({c:02x}) r{d} = addr_space_cast(r{s}, {}, {})", (imm as u32) >> 16, imm as u16)
            } else if c == BPF_ALU64 | BPF_MOV | BPF_X && off == -1 {
                format!("({c:02x}) r{d} = &(void __percpu *)(r{s})")
            } else {
                let signed = (op == BPF_DIV || op == BPF_MOD) && off == 1;
                let o = if signed { if op == BPF_DIV { "s/=" } else { "s%=" } } else { alu_op(op) };
                if c & BPF_X != 0 {
                    let sx = match (op, off) {
                        (BPF_MOV, 8) => "(s8)",
                        (BPF_MOV, 16) => "(s16)",
                        (BPF_MOV, 32) => "(s32)",
                        _ => "",
                    };
                    format!("({c:02x}) {r}{d} {o} {sx}{r}{s}")
                } else {
                    format!("({c:02x}) {r}{d} {o} {imm}")
                }
            }
        }
        BPF_STX => {
            let sz = ldst(c);
            let dw = if c & 0x18 == BPF_DW { "64" } else { "" };
            if mode == BPF_MEM {
                format!("({c:02x}) *({sz} *)(r{d} {off:+}) = r{s}")
            } else if mode == BPF_ATOMIC && matches!(imm, 0x00 | 0x40 | 0x50 | 0xa0) {
                format!("({c:02x}) lock *({sz} *)(r{d} {off:+}) {} r{s}", alu_op(imm as u8))
            } else if mode == BPF_ATOMIC && matches!(imm, 0x01 | 0x41 | 0x51 | 0xa1) {
                format!("({c:02x}) r{s} = atomic{dw}_fetch_{}(({sz} *)(r{d} {off:+}), r{s})", atomic_alu(imm))
            } else if mode == BPF_ATOMIC && imm == BPF_CMPXCHG {
                format!("({c:02x}) r0 = atomic{dw}_cmpxchg(({sz} *)(r{d} {off:+}), r0, r{s})")
            } else if mode == BPF_ATOMIC && imm == BPF_XCHG {
                format!("({c:02x}) r{s} = atomic{dw}_xchg(({sz} *)(r{d} {off:+}), r{s})")
            } else if mode == BPF_ATOMIC && imm == BPF_LOAD_ACQ {
                format!("({c:02x}) r{d} = load_acquire(({sz} *)(r{s} {off:+}))")
            } else if mode == BPF_ATOMIC && imm == BPF_STORE_REL {
                format!("({c:02x}) store_release(({sz} *)(r{d} {off:+}), r{s})")
            } else {
                format!("BUG_{c:02x}")
            }
        }
        BPF_ST => {
            if mode == BPF_MEM {
                format!("({c:02x}) *({} *)(r{d} {off:+}) = {imm}", ldst(c))
            } else if mode == BPF_NOSPEC {
                format!("({c:02x}) nospec")
            } else {
                format!("BUG_st_{c:02x}")
            }
        }
        BPF_LDX => {
            let sz = match mode {
                BPF_MEM => ldst(c),
                BPF_MEMSX => ldsx(c),
                _ => return format!("BUG_ldx_{c:02x}"),
            };
            format!("({c:02x}) r{d} = *({sz} *)(r{s} {off:+})")
        }
        BPF_LD => {
            if mode == BPF_ABS {
                format!("({c:02x}) r0 = *({} *)skb[{imm}]", ldst(c))
            } else if mode == BPF_IND {
                format!("({c:02x}) r0 = *({} *)skb[r{s} + {imm}]", ldst(c))
            } else if mode == BPF_IMM && c & 0x18 == BPF_DW {
                let hi = next.map_or(0, |n| n.imm as u32 as u64);
                let full = (hi << 32) | imm as u32 as u64;
                format!("({c:02x}) r{d} = {}", names.imm64(insn, full))
            } else {
                format!("BUG_ld_{c:02x}")
            }
        }
        BPF_JMP | BPF_JMP32 => {
            let r = w(class == BPF_JMP32);
            if op == BPF_CALL {
                if s == PSEUDO_CALL {
                    format!("({c:02x}) call pc{}", names.call(insn))
                } else {
                    format!("({c:02x}) call {}#{imm}", names.call(insn))
                }
            } else if c == BPF_JMP | BPF_JA {
                format!("({c:02x}) goto pc{off:+}")
            } else if c == BPF_JMP | BPF_JCOND && s == 0 {
                format!("({c:02x}) may_goto pc{off:+}")
            } else if c == BPF_JMP32 | BPF_JA {
                format!("({c:02x}) gotol pc{imm:+}")
            } else if c == BPF_JMP | BPF_EXIT {
                format!("({c:02x}) exit")
            } else if c & BPF_X != 0 {
                format!("({c:02x}) if {r}{d} {} {r}{s} goto pc{off:+}", jmp_op(op))
            } else {
                format!("({c:02x}) if {r}{d} {} {:#x} goto pc{off:+}", jmp_op(op), imm as u32)
            }
        }
        _ => format!("({c:02x}) {}", class_name(class)),
    }
}

/// Whether the instruction takes two slots (ld_imm64).
pub fn is_double(insn: &Insn) -> bool {
    insn.code == BPF_LD | BPF_IMM | BPF_DW
}

/// A map an instruction refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapRef {
    pub id: u32,
    /// The kernel's name of the map, and dpdbg's pin name when it is one of ours.
    pub name: String,
}

/// One instruction of a dump.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// Its slot in the program (an ld_imm64 takes two).
    pub index: usize,
    /// The kernel's notation, as `bpftool prog dump xlated` prints it.
    pub disasm: String,
    /// The map an ld_imm64 loads (its address or a value inside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<MapRef>,
    /// The raw bytes, as bpftool's `opcodes` prints them.
    pub opcodes: String,
}

/// A function of the program (from its BTF func_info), where it starts.
#[derive(Clone, Debug, Serialize)]
pub struct Function {
    pub name: String,
    pub start: usize,
}

/// Everything `prog dump xlated` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Dump {
    pub id: u32,
    pub name: String,
    #[serde(rename = "type")]
    pub prog_type: &'static str,
    pub tag: String,
    /// Instructions (an ld_imm64 counts once) and slots (it counts twice).
    pub insn_count: usize,
    pub slots: usize,
    pub verified_insns: u32,
    /// The kernel's run count and run time (nonzero only while statistics are on).
    pub run_count: u64,
    pub run_time_ns: u64,
    pub maps: Vec<MapRef>,
    pub functions: Vec<Function>,
    pub insns: Vec<Line>,
}

/// /proc/kallsyms by address, as bpftool reads it.
struct Kallsyms {
    by_addr: HashMap<u64, String>,
    call_base: Option<u64>,
}

impl Kallsyms {
    fn load() -> Kallsyms {
        let mut by_addr = HashMap::new();
        let mut call_base = None;
        if let Ok(text) = std::fs::read_to_string("/proc/kallsyms") {
            for line in text.lines() {
                let mut it = line.split_whitespace();
                let (Some(a), Some(_), Some(name)) = (it.next(), it.next(), it.next()) else { continue };
                let Ok(addr) = u64::from_str_radix(a, 16) else { continue };
                if addr == 0 {
                    continue;
                }
                if name == "__bpf_call_base" {
                    call_base = Some(addr);
                }
                by_addr.entry(addr).or_insert_with(|| name.to_string());
            }
        }
        Kallsyms { by_addr, call_base }
    }
}

struct DumpNames<'a> {
    syms: Option<&'a Kallsyms>,
    jited_ksyms: &'a [u64],
}

impl Names for DumpNames<'_> {
    fn call(&self, insn: &Insn) -> String {
        let base = self.syms.and_then(|s| s.call_base).unwrap_or(0);
        let mut address = base.wrapping_add(insn.imm as i64 as u64);
        if insn.src == PSEUDO_CALL
            && let Some(a) = self.jited_ksyms.get(insn.imm as u32 as usize)
        {
            address = *a;
        }
        let sym = self.syms.and_then(|s| s.by_addr.get(&address));
        if insn.src == PSEUDO_CALL {
            // After the JIT the kernel keeps the relative jump in `off`
            // and the function's index in `imm`.
            match (self.jited_ksyms.is_empty(), sym) {
                (true, _) => format!("{:+}", insn.off),
                (false, Some(name)) => format!("{:+}#{name}", insn.off),
                (false, None) => format!("{:+}#{address:#x}", insn.off),
            }
        } else {
            sym.cloned().unwrap_or_else(|| format!("{address:#x}"))
        }
    }

    fn imm64(&self, insn: &Insn, full: u64) -> String {
        match insn.src {
            PSEUDO_MAP_FD => format!("map[id:{}]", full & 0xffff_ffff),
            PSEUDO_MAP_VALUE => format!("map[id:{}][0]+{}", full & 0xffff_ffff, full >> 32),
            PSEUDO_MAP_IDX_VALUE => format!("map[idx:{}]+{}", full >> 32, full & 0xffff_ffff),
            _ => format!("{full:#x}"),
        }
    }
}

/// Disassembles `bytes` (8 per slot) with bpftool's names.
fn lines(bytes: &[u8], names: &dyn Names, map_name: &mut dyn FnMut(u32) -> String) -> Vec<Line> {
    let insns: Vec<Insn> = bytes.chunks_exact(8).map(Insn::from_bytes).collect();
    let mut out = Vec::with_capacity(insns.len());
    let mut i = 0;
    while i < insns.len() {
        let insn = &insns[i];
        let double = is_double(insn) && i + 1 < insns.len();
        let next = if double { insns.get(i + 1) } else { None };
        let text = disasm(insn, next, names);
        let map = (is_double(insn) && matches!(insn.src, PSEUDO_MAP_FD | PSEUDO_MAP_VALUE)).then(|| {
            let id = insn.imm as u32;
            MapRef { id, name: map_name(id) }
        });
        let raw = &bytes[i * 8..(i + if double { 2 } else { 1 }) * 8];
        let mut opcodes = String::with_capacity(raw.len() * 3);
        for (k, b) in raw.iter().enumerate() {
            if k > 0 {
                opcodes.push(' ');
            }
            let _ = write!(opcodes, "{b:02x}");
        }
        out.push(Line { index: i, disasm: text, map, opcodes });
        i += if double { 2 } else { 1 };
    }
    out
}

/// Which program: an id, a name of the datapath's pinned programs, or the
/// name of any program on the node (it must be unique).
pub fn find(bpffs: &Path, spec: &str) -> Result<u32> {
    sys::require_privileges("reading programs")?;
    let spec = spec.trim();
    if let Some(id) = spec.strip_prefix("id:").unwrap_or(spec).parse::<u32>().ok().filter(|_| !spec.is_empty()) {
        return Ok(id);
    }
    let pin = Pins::new(bpffs).prog(spec);
    if !spec.contains('/')
        && let Ok(fd) = raw::obj_get(&pin)
        && let Ok(p) = raw::prog_xlated(fd.as_raw_fd())
    {
        return Ok(p.id);
    }
    let mut found = Vec::new();
    for id in raw::prog_ids().map_err(|e| Error::io("bpf_prog_get_next_id", "programs", e))? {
        let Ok(fd) = raw::prog_fd_by_id(id) else { continue };
        if raw::prog_info(fd.as_raw_fd()).is_ok_and(|i| i.name == spec) {
            found.push(id);
        }
    }
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(Error::InvalidInput(format!(
            "no program named {spec:?} (neither pinned under {} nor loaded on the node): see `dpdbg prog list`",
            Pins::new(bpffs).root().join("progs").display()
        ))),
        many => Err(Error::InvalidInput(format!(
            "{} programs are named {spec:?} (ids {}): give an id",
            many.len(),
            many.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The names dpdbg pins its maps under, by map id, for the datapath under `bpffs`.
fn our_maps(bpffs: &Path) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(Pins::new(bpffs).root().join("maps")) else { return out };
    for e in rd.flatten() {
        if let Ok(fd) = raw::obj_get(&e.path())
            && let Ok(i) = raw::map_info(fd.as_raw_fd())
        {
            out.insert(i.id, e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// The translated instructions of program `id`, disassembled.
pub fn dump(bpffs: &Path, id: u32) -> Result<Dump> {
    sys::require_privileges("reading a program's instructions")?;
    let fd = raw::prog_fd_by_id(id).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            Error::InvalidInput(format!("no program with id {id} (see `dpdbg prog list`)"))
        } else {
            Error::io("bpf_prog_get_fd_by_id", format!("program {id}"), e)
        }
    })?;
    let p = raw::prog_xlated(fd.as_raw_fd())
        .map_err(|e| Error::io("bpf_obj_get_info_by_fd", format!("program {id}"), e))?;
    let insns: Vec<Insn> = p.insns.chunks_exact(8).map(Insn::from_bytes).collect();
    let calls = insns.iter().any(|i| i.code & 0xf7 == BPF_JMP | BPF_CALL);
    let syms = calls.then(Kallsyms::load);
    let names = DumpNames { syms: syms.as_ref(), jited_ksyms: &p.jited_ksyms };
    let ours = our_maps(bpffs);
    let mut cache: HashMap<u32, String> = HashMap::new();
    let mut name_of = |mid: u32| {
        cache
            .entry(mid)
            .or_insert_with(|| {
                let kernel = raw::map_fd_by_id(mid)
                    .ok()
                    .and_then(|fd| raw::map_info(fd.as_raw_fd()).ok())
                    .map(|i| i.name)
                    .unwrap_or_default();
                match ours.get(&mid) {
                    Some(pin) if *pin != kernel => format!("{pin} ({kernel})"),
                    Some(pin) => pin.clone(),
                    None => kernel,
                }
            })
            .clone()
    };
    let lines = lines(&p.insns, &names, &mut name_of);
    let maps = p.map_ids.iter().map(|m| MapRef { id: *m, name: name_of(*m) }).collect();
    let functions = functions(&p);
    Ok(Dump {
        id: p.id,
        name: p.name,
        prog_type: crate::progs::prog_type_name(p.prog_type),
        tag: p.tag.iter().map(|b| format!("{b:02x}")).collect(),
        insn_count: lines.len(),
        slots: p.insns.len() / 8,
        verified_insns: p.verified_insns,
        run_count: p.run_cnt,
        run_time_ns: p.run_time_ns,
        maps,
        functions,
        insns: lines,
    })
}

/// The program's functions by name, from its BTF (none without BTF).
fn functions(p: &raw::ProgXlated) -> Vec<Function> {
    if p.btf_id == 0 || p.func_info.is_empty() {
        return vec![];
    }
    let Ok(btf) = raw::btf_by_id(p.btf_id).map_err(|_| ()).and_then(|b| crate::btf::Btf::parse(&b).map_err(|_| ()))
    else {
        return vec![];
    };
    p.func_info
        .iter()
        .map(|(off, ty)| Function {
            name: match btf.get(*ty) {
                Some(crate::btf::Type::Func { name, .. }) => name.clone(),
                _ => format!("func#{ty}"),
            },
            start: *off as usize,
        })
        .collect()
}

/// The dump as bpftool's text prints it: `%4d: ` and the instruction, a
/// line `NAME:` where each function starts, and with `opcodes` the raw
/// bytes under each instruction. Map references end with `; NAME`.
pub fn write_text(out: &mut String, d: &Dump, opcodes: bool) {
    for l in &d.insns {
        if let Some(f) = d.functions.iter().find(|f| f.start == l.index) {
            let _ = writeln!(out, "{}:", f.name);
        }
        let _ = write!(out, "{:>4}: {}", format!(" {}", l.index), l.disasm);
        if let Some(m) = &l.map {
            let _ = write!(out, "  ; {}", m.name);
        }
        out.push('\n');
        if opcodes {
            let _ = writeln!(out, "       {}", l.opcodes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, dst, src, off, imm }
    }

    /// Lines as kernel/bpf/disasm.c writes them (bpftool's dumps of the datapath, by hand).
    #[test]
    fn the_kernels_notation() {
        let n = NoNames;
        let cases = [
            (insn(0xbf, 5, 1, 0, 0), "(bf) r5 = r1"),
            (insn(0xb4, 1, 0, 0, 0), "(b4) w1 = 0"),
            (insn(0x73, 10, 1, -162, 0), "(73) *(u8 *)(r10 -162) = r1"),
            (insn(0x61, 6, 5, 112, 0), "(61) r6 = *(u32 *)(r5 +112)"),
            (insn(0x16, 1, 0, 107, 0xdd86), "(16) if w1 == 0xdd86 goto pc+107"),
            (insn(0xc5, 0, 0, 607, 0), "(c5) if r0 s< 0x0 goto pc+607"),
            (insn(0xdc, 3, 0, 0, 16), "(dc) r3 = be16 r3"),
            (insn(0x05, 0, 0, -125, 0), "(05) goto pc-125"),
            (insn(0x95, 0, 0, 0, 0), "(95) exit"),
            (insn(0x2e, 2, 1, 38, 0), "(2e) if w2 > w1 goto pc+38"),
            (insn(0x07, 1, 0, 0, 14), "(07) r1 += 14"),
            (insn(0x87, 1, 0, 0, 0), "(87) r1 = -r1"),
            (insn(0xdb, 2, 1, 8, 0x01), "(db) r1 = atomic64_fetch_add((u64 *)(r2 +8), r1)"),
            (insn(0xdb, 2, 1, 8, 0x00), "(db) lock *(u64 *)(r2 +8) += r1"),
            (insn(0xbf, 1, 2, 8, 0), "(bf) r1 = (s8)r2"),
            (insn(0x3f, 1, 2, 1, 0), "(3f) r1 s/= r2"),
            (insn(0x91, 1, 2, 4, 0), "(91) r1 = *(s8 *)(r2 +4)"),
            (insn(0x7a, 10, 0, -8, 7), "(7a) *(u64 *)(r10 -8) = 7"),
        ];
        for (i, want) in cases {
            assert_eq!(disasm(&i, None, &n), want);
        }
        let lo = insn(0x18, 1, PSEUDO_MAP_VALUE, 0, 4071);
        let hi = insn(0, 0, 0, 0, 8);
        let names = DumpNames { syms: None, jited_ksyms: &[] };
        assert_eq!(disasm(&lo, Some(&hi), &names), "(18) r1 = map[id:4071][0]+8");
        let lo = insn(0x18, 1, PSEUDO_MAP_FD, 0, 4075);
        assert_eq!(disasm(&lo, Some(&insn(0, 0, 0, 0, 0)), &names), "(18) r1 = map[id:4075]");
    }

    #[test]
    fn text_numbers_slots_as_bpftool() {
        let mut bytes = Vec::new();
        for i in [insn(0x18, 1, 1, 0, 9), insn(0, 0, 0, 0, 0), insn(0x95, 0, 0, 0, 0)] {
            bytes.push(i.code);
            bytes.push(if cfg!(target_endian = "little") { i.dst | i.src << 4 } else { i.dst << 4 | i.src });
            bytes.extend_from_slice(&i.off.to_ne_bytes());
            bytes.extend_from_slice(&i.imm.to_ne_bytes());
        }
        let names = DumpNames { syms: None, jited_ksyms: &[] };
        let ls = lines(&bytes, &names, &mut |id| format!("m{id}"));
        assert_eq!(ls.len(), 2);
        assert_eq!(ls[1].index, 2);
        assert_eq!(ls[0].map, Some(MapRef { id: 9, name: "m9".into() }));
        let d = Dump {
            id: 1,
            name: "p".into(),
            prog_type: "sched_cls",
            tag: String::new(),
            insn_count: 2,
            slots: 3,
            verified_insns: 0,
            run_count: 0,
            run_time_ns: 0,
            maps: vec![],
            functions: vec![Function { name: "p".into(), start: 0 }],
            insns: ls,
        };
        let mut s = String::new();
        write_text(&mut s, &d, true);
        assert_eq!(
            s,
            "p:\n   0: (18) r1 = map[id:9]  ; m9\n       18 11 00 00 09 00 00 00 00 00 00 00 00 00 00 00\n   2: (95) exit\n       95 00 00 00 00 00 00 00\n"
        );
    }
}
