//! The D-Bus wire format (little-endian), as much of it as talking to systemd
//! needs: values of any signature, and the message header around them.

use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// Element signature and elements (the signature says what an empty array holds).
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::F64(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(e, _) => format!("a{e}"),
            Value::Struct(v) => format!("({})", v.iter().map(Value::signature).collect::<String>()),
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }
}

fn alignment(sig: u8) -> usize {
    match sig {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// Appends values, aligning relative to the start of the buffer (a message's
/// header and body both start 8-aligned).
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub fn put(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I16(n) => self.fixed(&n.to_le_bytes()),
            Value::U16(n) => self.fixed(&n.to_le_bytes()),
            Value::I32(n) => self.fixed(&n.to_le_bytes()),
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => self.fixed(&n.to_le_bytes()),
            Value::U64(n) => self.fixed(&n.to_le_bytes()),
            Value::F64(n) => self.fixed(&n.to_le_bytes()),
            Value::Str(s) | Value::Path(s) => self.string(s),
            Value::Sig(s) => {
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                self.pad(alignment(elem.as_bytes()[0]));
                let start = self.buf.len();
                for i in items {
                    self.put(i);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.put(f);
                }
            }
            Value::Variant(inner) => {
                self.put(&Value::Sig(inner.signature()));
                self.put(inner);
            }
        }
    }

    fn fixed(&mut self, bytes: &[u8]) {
        self.pad(bytes.len());
        self.buf.extend_from_slice(bytes);
    }
}

/// Reads values of a given signature; positions are relative to `base` for alignment.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> Reader<'a> {
        Reader { data, pos }
    }

    fn take(&mut self, n: usize, align: usize) -> Result<&'a [u8]> {
        self.pos = self.pos.div_ceil(align) * align;
        let end = self
            .pos
            .checked_add(n)
            .context("d-bus message: length overflow")?;
        let s = self
            .data
            .get(self.pos..end)
            .context("d-bus message: truncated")?;
        self.pos = end;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N, N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn string(&mut self) -> Result<String> {
        let len = u32::from_le_bytes(self.arr()?) as usize;
        let s = self.take(len + 1, 1)?;
        String::from_utf8(s[..len].to_vec()).context("d-bus message: string is not utf-8")
    }

    /// Reads every complete type in `sig` in turn.
    pub fn get_all(&mut self, sig: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut rest = sig;
        while !rest.is_empty() {
            let n = single_type_len(rest.as_bytes())?;
            out.push(self.get(&rest[..n])?);
            rest = &rest[n..];
        }
        Ok(out)
    }

    /// Reads one value of the single complete type `sig`.
    pub fn get(&mut self, sig: &str) -> Result<Value> {
        let b = sig.as_bytes();
        Ok(match b[0] {
            b'y' => Value::Byte(self.take(1, 1)?[0]),
            b'b' => Value::Bool(u32::from_le_bytes(self.arr()?) != 0),
            b'n' => Value::I16(i16::from_le_bytes(self.arr()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.arr()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.arr()?)),
            b'u' | b'h' => Value::U32(u32::from_le_bytes(self.arr()?)),
            b'x' => Value::I64(i64::from_le_bytes(self.arr()?)),
            b't' => Value::U64(u64::from_le_bytes(self.arr()?)),
            b'd' => Value::F64(f64::from_le_bytes(self.arr()?)),
            b's' => Value::Str(self.string()?),
            b'o' => Value::Path(self.string()?),
            b'g' => Value::Sig(self.signature()?),
            b'v' => {
                let s = self.signature()?;
                if single_type_len(s.as_bytes())? != s.len() {
                    bail!("d-bus message: bad variant signature {s:?}");
                }
                Value::Variant(Box::new(self.get(&s)?))
            }
            b'a' => {
                let len = u32::from_le_bytes(self.arr()?) as usize;
                let elem = &sig[1..];
                self.take(0, alignment(elem.as_bytes()[0]))?;
                let end = self.pos + len;
                if end > self.data.len() {
                    bail!("d-bus message: truncated array");
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.get(elem)?);
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' | b'{' => {
                self.take(0, 8)?;
                Value::Struct(self.get_all(&sig[1..sig.len() - 1])?)
            }
            c => bail!("d-bus message: unknown type code {:?}", c as char),
        })
    }

    fn signature(&mut self) -> Result<String> {
        let len = self.take(1, 1)?[0] as usize;
        let s = self.take(len + 1, 1)?;
        String::from_utf8(s[..len].to_vec()).context("d-bus message: bad signature")
    }
}

/// The length of the first complete type in a signature.
pub fn single_type_len(sig: &[u8]) -> Result<usize> {
    match sig.first() {
        None => bail!("d-bus signature: missing type"),
        Some(b'a') => Ok(1 + single_type_len(&sig[1..])?),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while sig.get(i).is_some_and(|&c| c != close) {
                i += single_type_len(&sig[i..])?;
            }
            if i >= sig.len() {
                bail!("d-bus signature: unclosed {:?}", open as char);
            }
            Ok(i + 1)
        }
        Some(_) => Ok(1),
    }
}

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// A message's header fields that matter here, and its body.
#[derive(Debug, Default)]
pub struct Message {
    pub kind: u8,
    pub serial: u32,
    pub path: String,
    pub interface: String,
    pub member: String,
    pub destination: String,
    pub error_name: String,
    pub reply_serial: u32,
    pub body: Vec<Value>,
}

impl Message {
    pub fn call(dest: &str, path: &str, iface: &str, member: &str, body: Vec<Value>) -> Message {
        Message {
            kind: METHOD_CALL,
            path: path.into(),
            interface: iface.into(),
            member: member.into(),
            destination: dest.into(),
            body,
            ..Message::default()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Writer::default();
        for v in &self.body {
            body.put(v);
        }
        let sig: String = self.body.iter().map(Value::signature).collect();
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![
                Value::Byte(code),
                Value::Variant(Box::new(v)),
            ]))
        };
        field(1, Value::Path(self.path.clone()));
        for (code, s) in [
            (2, &self.interface),
            (3, &self.member),
            (6, &self.destination),
        ] {
            if !s.is_empty() {
                field(code, Value::Str(s.clone()));
            }
        }
        if !sig.is_empty() {
            field(8, Value::Sig(sig));
        }
        let mut w = Writer::default();
        for v in [
            Value::Byte(b'l'),
            Value::Byte(self.kind),
            Value::Byte(0),
            Value::Byte(1),
            Value::U32(body.buf.len() as u32),
            Value::U32(self.serial),
            Value::Array("(yv)".into(), fields),
        ] {
            w.put(&v);
        }
        w.pad(8);
        w.buf.extend_from_slice(&body.buf);
        w.buf
    }

    /// The total length of the message starting `head` (at least 16 bytes), if known.
    pub fn total_len(head: &[u8]) -> Result<usize> {
        if head[0] != b'l' {
            bail!("d-bus message: only little-endian messages are handled");
        }
        let body = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let fields = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;
        Ok((16 + fields).div_ceil(8) * 8 + body)
    }

    pub fn decode(data: &[u8]) -> Result<Message> {
        let mut r = Reader::new(data, 0);
        let head = r.get_all("yyyyuua(yv)")?;
        let mut m = Message::default();
        let mut sig = String::new();
        if let [_, Value::Byte(kind), _, _, _, Value::U32(serial), Value::Array(_, fields)] =
            &head[..]
        {
            m.kind = *kind;
            m.serial = *serial;
            for f in fields {
                let Value::Struct(f) = f else { continue };
                let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.first(), f.get(1))
                else {
                    continue;
                };
                let text = v.as_str().unwrap_or_default().to_string();
                match code {
                    1 => m.path = text,
                    2 => m.interface = text,
                    3 => m.member = text,
                    4 => m.error_name = text,
                    5 => {
                        if let Value::U32(n) = **v {
                            m.reply_serial = n
                        }
                    }
                    6 => m.destination = text,
                    8 => sig = text,
                    _ => {}
                }
            }
        }
        r.take(0, 8)?;
        m.body = r.get_all(&sig)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &Value) -> Vec<u8> {
        let mut w = Writer::default();
        w.put(v);
        w.buf
    }

    #[test]
    fn basic_types_are_aligned_and_little_endian() {
        assert_eq!(bytes(&Value::Str("ab".into())), b"\x02\0\0\0ab\0");
        assert_eq!(bytes(&Value::Sig("s".into())), b"\x01s\0");
        let s = Value::Struct(vec![Value::Byte(7), Value::U64(1)]);
        assert_eq!(bytes(&s), b"\x07\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0");
        assert_eq!(bytes(&Value::Bool(true)), b"\x01\0\0\0");
    }

    #[test]
    fn array_length_excludes_the_padding_before_its_first_element() {
        let a = Value::Array("t".into(), vec![Value::U64(5)]);
        // length 8, then 4 bytes of padding to the 8-aligned element.
        assert_eq!(bytes(&a), b"\x08\0\0\0\0\0\0\0\x05\0\0\0\0\0\0\0");
        let empty = Value::Array("(sv)".into(), vec![]);
        assert_eq!(bytes(&empty), b"\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn start_transient_unit_body_round_trips() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::Str("Delegate".into()),
                    Value::Variant(Box::new(Value::Bool(true))),
                ]),
                Value::Struct(vec![
                    Value::Str("PIDs".into()),
                    Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(42)]))),
                ]),
            ],
        );
        let body = vec![
            Value::Str("x-1.scope".into()),
            Value::Str("replace".into()),
            props,
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let sig: String = body.iter().map(Value::signature).collect();
        assert_eq!(sig, "ssa(sv)a(sa(sv))");
        let mut w = Writer::default();
        for v in &body {
            w.put(v);
        }
        let back = Reader::new(&w.buf, 0).get_all(&sig).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn message_encodes_and_decodes() {
        let mut m = Message::call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StopUnit",
            vec![Value::Str("a.scope".into()), Value::Str("replace".into())],
        );
        m.serial = 9;
        let data = m.encode();
        assert_eq!(data.len() % 8, m.encode().len() % 8);
        assert_eq!(Message::total_len(&data).unwrap(), data.len());
        let back = Message::decode(&data).unwrap();
        assert_eq!(back.kind, METHOD_CALL);
        assert_eq!(back.serial, 9);
        assert_eq!(back.member, "StopUnit");
        assert_eq!(back.destination, "org.freedesktop.systemd1");
        assert_eq!(back.body, m.body);
    }

    #[test]
    fn signatures_split_into_complete_types() {
        assert_eq!(single_type_len(b"a(sv)s").unwrap(), 5);
        assert_eq!(single_type_len(b"a{sv}").unwrap(), 5);
        assert_eq!(single_type_len(b"(sa(sv))").unwrap(), 8);
        assert!(single_type_len(b"(ss").is_err());
        assert!(Reader::new(b"\x05\0\0\0ab", 0).get("s").is_err());
    }
}
