//! The one rule for JSON the hub takes in and hands back out: it must be
//! readable by any JSON parser a client may use, not only by the one that
//! first accepted it.
//!
//! The hub keeps custom event data verbatim (see [`super::JsonObject`]), so
//! a body that merely *parses* could still be stored and later break every
//! reader: `1e400` is out of range for every float parser, and nesting past
//! a parser's recursion limit (128 in serde_json, less in some) fails the
//! whole page it sits in. So request bodies are checked here before they are
//! parsed into their types (every body endpoint, through the API's one body
//! extractor), and stored rows are checked again before they are served.
//!
//! The rule: well-formed UTF-8 JSON, objects and arrays nested at most
//! [`MAX_DEPTH`] levels (the outermost counts as one), every number
//! representable as an `i64`, a `u64` or a finite `f64`.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::{self, Write as _};

/// How deep objects and arrays may nest, the outermost counting as one.
pub const MAX_DEPTH: usize = 32;

/// Why a document breaks the rule; the message names where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("{at}: objects and arrays nest deeper than {MAX_DEPTH} levels")]
    TooDeep { at: String },
    #[error(
        "{at}: number out of range (numbers must fit a 64-bit integer or a finite 64-bit float)"
    )]
    Number { at: String },
    #[error("{cause}")]
    Invalid { cause: String },
}

/// Checks `text` against the rule. `root` names the document in messages
/// (`"body"`, `"data"`); a path such as `data.list[1]` follows it.
pub fn check(text: &[u8], root: &str) -> Result<(), JsonError> {
    let mut walk = Walk::default();
    let mut de = serde_json::Deserializer::from_slice(text);
    let result = Node { walk: &mut walk }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    let Err(e) = result else {
        return Ok(());
    };
    let at = walk.path(root);
    Err(match walk.fault {
        Some(Fault::TooDeep) => JsonError::TooDeep { at },
        None if e.to_string().starts_with("number out of range") => JsonError::Number { at },
        None => JsonError::Invalid {
            cause: e.to_string(),
        },
    })
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    TooDeep,
}

/// Where the walk is. The path is only built when the walk fails: each
/// level that sees its child fail adds its own step while unwinding.
#[derive(Default)]
struct Walk {
    depth: usize,
    fault: Option<Fault>,
    /// Steps from the failure up to the root, innermost first.
    trail: Vec<Step>,
}

enum Step {
    Key(String),
    Index(usize),
}

impl Walk {
    fn path(&self, root: &str) -> String {
        let mut path = root.to_owned();
        for step in self.trail.iter().rev() {
            match step {
                Step::Key(key) if is_plain(key) => {
                    let _ = write!(path, ".{key}");
                }
                Step::Key(key) => {
                    let _ = write!(path, "[{}]", serde_json::Value::from(key.as_str()));
                }
                Step::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
            }
        }
        path
    }

    fn enter<E: serde::de::Error>(&mut self) -> Result<(), E> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.fault = Some(Fault::TooDeep);
            return Err(E::custom("too deep"));
        }
        Ok(())
    }
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One value of the document.
struct Node<'w> {
    walk: &'w mut Walk,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        // serde_json refuses out-of-range numbers itself; this keeps the
        // rule true whatever parser feeds the walk.
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("number out of range"))
        }
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.walk.enter()?;
        let mut index = 0;
        loop {
            match seq.next_element_seed(Node {
                walk: &mut *self.walk,
            }) {
                Ok(Some(())) => index += 1,
                Ok(None) => break,
                Err(e) => {
                    self.walk.trail.push(Step::Index(index));
                    return Err(e);
                }
            }
        }
        self.walk.depth -= 1;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.walk.enter()?;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if let Err(e) = map.next_value_seed(Node {
                walk: &mut *self.walk,
            }) {
                self.walk.trail.push(Step::Key(key.into_owned()));
                return Err(e);
            }
        }
        self.walk.depth -= 1;
        Ok(())
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct KeySeed;

enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn into_owned(self) -> String {
        match self {
            Key::Borrowed(k) => k.to_owned(),
            Key::Owned(k) => k,
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn accepts_what_round_trips() {
        for ok in [
            "{}",
            "[]",
            "null",
            "0",
            r#"{"a":[1,-2,0.5,1e308,-1e308,18446744073709551615,-9223372036854775808,1e-400]}"#,
            r#"{"s":"\u00e9\ud83d\ude00","k\"ey":true}"#,
            &nested(MAX_DEPTH),
        ] {
            assert_eq!(check(ok.as_bytes(), "body"), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_depth_past_the_limit_with_its_path() {
        let err = check(nested(MAX_DEPTH + 1).as_bytes(), "body").unwrap_err();
        let at = format!("body{}", "[0]".repeat(MAX_DEPTH));
        assert_eq!(err, JsonError::TooDeep { at });
        // Far past any recursion limit, it stops at the first level too many.
        let err = check(nested(100_000).as_bytes(), "data").unwrap_err();
        assert!(matches!(err, JsonError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn refuses_numbers_out_of_range_with_their_path() {
        let cases = [
            (r#"{"n":1e400}"#, "data.n"),
            (r#"{"a":{"b c":[0,-1e400]}}"#, r#"data.a["b c"][1]"#),
            ("1e400", "data"),
        ];
        for (text, at) in cases {
            let err = check(text.as_bytes(), "data").unwrap_err();
            assert_eq!(err, JsonError::Number { at: at.into() }, "{text}");
            assert!(err.to_string().starts_with(at), "{err}");
        }
    }

    #[test]
    fn refuses_what_does_not_parse() {
        for bad in [
            "{not json",
            "{}x",
            "",
            r#"{"s":"\ud800"}"#,
            "[1,]",
            "{\"a\":\"\u{1}\"}",
        ] {
            let err = check(bad.as_bytes(), "body").unwrap_err();
            assert!(matches!(err, JsonError::Invalid { .. }), "{bad:?}: {err}");
        }
        assert!(check(b"{\"a\":\"\xff\"}", "body").is_err(), "invalid UTF-8");
    }
}
