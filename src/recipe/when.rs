//! `when:` conditions on OS facts. All given conditions must hold.
//!
//! ```yaml
//! - ssh-host-keys: {}
//!   when: {family: debian, distro: [debian, ubuntu], version: ">= 11"}
//! ```

use crate::guest::{Family, OsFacts};
use regex::Regex;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::sync::LazyLock;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub family: Vec<Family>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub distro: Vec<String>,
    /// `12`, `>= 22.04`, `< 9`, `!= 8.2` — compared as major.minor.
    #[serde(
        default,
        deserialize_with = "version_condition",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<bool>,
}

impl When {
    pub fn holds(&self, facts: &OsFacts) -> bool {
        (self.family.is_empty() || self.family.contains(&facts.family))
            && (self.distro.is_empty() || self.distro.iter().any(|d| d == &facts.distro))
            && self
                .version
                .as_deref()
                .map_or(true, |v| version_holds(v, facts.major, facts.minor))
            && self.cloud_init.map_or(true, |c| c == facts.cloud_init)
            && self.selinux.map_or(true, |s| s == facts.selinux)
    }

    /// Why it does not hold, for the report.
    pub fn describe(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `>= 12`, `<8.4`, `22.04`: an optional operator and a major[.minor] version.
static CONDITION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(>=|<=|==|=|!=|>|<)?\s*(\d+)(?:\.(\d+))?\s*$").expect("static regex"));

fn parse_condition(s: &str) -> Option<(&str, i32, Option<i32>)> {
    let c = CONDITION.captures(s)?;
    let op = c.get(1).map(|m| m.as_str()).unwrap_or("=");
    let major = c[2].parse().ok()?;
    let minor = c.get(3).and_then(|m| m.as_str().parse().ok());
    // Borrow the operator from the input for the caller.
    let op = match op {
        ">=" => ">=",
        "<=" => "<=",
        "!=" => "!=",
        ">" => ">",
        "<" => "<",
        _ => "=",
    };
    Some((op, major, minor))
}

fn version_holds(cond: &str, major: i32, minor: i32) -> bool {
    let Some((op, want_major, want_minor)) = parse_condition(cond) else {
        return false;
    };
    // "12" matches any 12.x; "22.04" matches exactly.
    let ord = match want_minor {
        Some(m) => (major, minor).cmp(&(want_major, m)),
        None => major.cmp(&want_major),
    };
    match op {
        ">=" => ord != Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        "<" => ord == Ordering::Less,
        "!=" => ord != Ordering::Equal,
        _ => ord == Ordering::Equal,
    }
}

fn version_condition<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        N(f64),
    }
    let s =
        match V::deserialize(d).map_err(|_| de::Error::custom("`version` must be like `12`, `>= 22.04` or `< 9`"))? {
            V::S(s) => s,
            V::N(n) => n.to_string(),
        };
    if parse_condition(&s).is_none() {
        return Err(de::Error::custom(format!(
            "bad version condition {s:?}: use e.g. `12`, `>= 22.04`, `< 9`"
        )));
    }
    Ok(Some(s))
}

fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a name or a list of names")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(de::value::StrDeserializer::<E>::new(s))?])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut v = Vec::new();
            while let Some(x) = seq.next_element()? {
                v.push(x);
            }
            Ok(v)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(version_holds("12", 12, 5));
        assert!(!version_holds("12", 11, 0));
        assert!(version_holds(">= 22.04", 22, 4));
        assert!(version_holds(">=22.04", 24, 4));
        assert!(!version_holds(">= 22.04", 20, 4));
        assert!(version_holds("< 9", 8, 10));
        assert!(version_holds("!= 8.2", 8, 3));
    }

    #[test]
    fn conditions() {
        let w: When = serde_yaml::from_str("{family: debian, version: '>= 12'}").unwrap();
        let mut f = OsFacts::sample("debian");
        assert!(w.holds(&f));
        f.major = 11;
        assert!(!w.holds(&f));
        let w: When = serde_yaml::from_str("{distro: [almalinux, rocky]}").unwrap();
        assert!(!w.holds(&OsFacts::sample("debian")));
        assert!(serde_yaml::from_str::<When>("{family: debain}").is_err());
        assert!(serde_yaml::from_str::<When>("{version: 'new'}").is_err());
        assert!(serde_yaml::from_str::<When>("{famly: debian}").is_err());
    }
}
