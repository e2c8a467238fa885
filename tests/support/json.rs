//! Just enough JSON to read `/stats`, the load generator's `--json` report and Chromium's
//! DevTools answers back, strictly: a malformed text fails the test.

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object, if it has one.
    pub fn find(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => panic!("not an object: {self:?}"),
        }
    }

    /// The member `key` of an object; a missing key fails the test.
    pub fn get(&self, key: &str) -> &Value {
        self.find(key)
            .unwrap_or_else(|| panic!("no key {key:?} in {self:?}"))
    }

    pub fn num(&self, key: &str) -> f64 {
        match self.get(key) {
            Value::Num(n) => *n,
            v => panic!("{key} is not a number: {v:?}"),
        }
    }

    /// The value itself, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value itself, if it is a number.
    pub fn as_num(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// The member `key`, a whole number.
    pub fn int(&self, key: &str) -> u64 {
        let n = self.num(key);
        assert!(n >= 0.0 && n.fract() == 0.0, "{key} = {n}");
        n as u64
    }

    pub fn str(&self, key: &str) -> &str {
        match self.get(key) {
            Value::Str(s) => s,
            v => panic!("{key} is not a string: {v:?}"),
        }
    }

    pub fn keys(&self) -> Vec<&str> {
        match self {
            Value::Obj(fields) => fields.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not an object: {self:?}"),
        }
    }
}

/// Parses one JSON value (surrounding whitespace allowed, nothing else).
pub fn parse(text: &str) -> Value {
    let mut p = Parser {
        s: text.trim().as_bytes(),
        i: 0,
    };
    let v = p.value();
    assert_eq!(p.i, p.s.len(), "trailing bytes after the JSON value: {text:.200}");
    v
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> u8 {
        *self.s.get(self.i).expect("unexpected end of JSON")
    }

    fn eat(&mut self, lit: &str) {
        assert!(
            self.s[self.i..].starts_with(lit.as_bytes()),
            "expected {lit:?} at {}",
            self.i
        );
        self.i += lit.len();
    }

    fn value(&mut self) -> Value {
        match self.peek() {
            b'n' => {
                self.eat("null");
                Value::Null
            }
            b't' => {
                self.eat("true");
                Value::Bool(true)
            }
            b'f' => {
                self.eat("false");
                Value::Bool(false)
            }
            b'"' => Value::Str(self.string()),
            b'[' => {
                self.eat("[");
                let mut items = Vec::new();
                while self.peek() != b']' {
                    if !items.is_empty() {
                        self.eat(",");
                    }
                    items.push(self.value());
                }
                self.eat("]");
                Value::Arr(items)
            }
            b'{' => {
                self.eat("{");
                let mut fields = Vec::new();
                while self.peek() != b'}' {
                    if !fields.is_empty() {
                        self.eat(",");
                    }
                    let key = self.string();
                    self.eat(":");
                    fields.push((key, self.value()));
                }
                self.eat("}");
                Value::Obj(fields)
            }
            _ => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|b| b"-+.eE0123456789".contains(b)) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits");
                Value::Num(
                    text.parse()
                        .unwrap_or_else(|_| panic!("bad number {text:?} at {start}")),
                )
            }
        }
    }

    fn string(&mut self) -> String {
        self.eat("\"");
        let mut units = Vec::new();
        let mut out = Vec::new();
        loop {
            let b = self.peek();
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let escape = self.peek();
                    self.i += 1;
                    let byte = match escape {
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).expect("four hex digits after \\u");
                            let hex = std::str::from_utf8(hex).expect("ASCII hex");
                            units.push(u16::from_str_radix(hex, 16).expect("hex digits after \\u"));
                            self.i += 4;
                            continue;
                        }
                        b'"' | b'\\' | b'/' => escape,
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        _ => panic!("bad escape \\{} at {}", escape as char, self.i),
                    };
                    flush_units(&mut units, &mut out);
                    out.push(byte);
                }
                b if b < 0x20 => panic!("a control character inside a string at {}", self.i),
                b => {
                    flush_units(&mut units, &mut out);
                    out.push(b);
                }
            }
        }
        flush_units(&mut units, &mut out);
        String::from_utf8(out).expect("UTF-8 strings")
    }
}

/// Appends the UTF-16 units of `\uXXXX` escapes (pairs for characters past the BMP).
fn flush_units(units: &mut Vec<u16>, out: &mut Vec<u8>) {
    for c in char::decode_utf16(units.drain(..)) {
        let c = c.expect("a lone surrogate in a \\u escape");
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
}
