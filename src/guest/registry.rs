//! Windows registry values, as hivex reads and writes them in a hive file: a type and raw
//! bytes. Strings are UTF-16LE with a terminating NUL, as Windows (and hivexregedit)
//! store them.

/// A NUL-terminated string.
pub const REG_SZ: u32 = 1;
/// A string with %VARIABLES% Windows expands when it reads it.
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_DWORD: u32 = 4;

/// One value: its registry type and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegValue {
    pub kind: u32,
    pub data: Vec<u8>,
}

impl RegValue {
    pub fn sz(s: &str) -> RegValue {
        RegValue {
            kind: REG_SZ,
            data: utf16z(s),
        }
    }

    pub fn expand_sz(s: &str) -> RegValue {
        RegValue {
            kind: REG_EXPAND_SZ,
            data: utf16z(s),
        }
    }

    pub fn dword(v: u32) -> RegValue {
        RegValue {
            kind: REG_DWORD,
            data: v.to_le_bytes().to_vec(),
        }
    }

    /// The string a REG_SZ or REG_EXPAND_SZ holds (up to its first NUL).
    pub fn string(&self) -> Option<String> {
        if !matches!(self.kind, REG_SZ | REG_EXPAND_SZ) || self.data.len() % 2 != 0 {
            return None;
        }
        let units: Vec<u16> = self
            .data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        String::from_utf16(&units).ok()
    }

    pub fn dword_value(&self) -> Option<u32> {
        match (self.kind, self.data.as_slice()) {
            (REG_DWORD, [a, b, c, d]) => Some(u32::from_le_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    }
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()
}

/// Values to set under one key (its path below the hive's root; missing keys are created).
#[derive(Debug, Clone)]
pub struct RegEdit {
    pub key: Vec<String>,
    pub values: Vec<(String, RegValue)>,
}

impl RegEdit {
    pub fn new(key: &[&str], values: Vec<(&str, RegValue)>) -> RegEdit {
        RegEdit {
            key: key.iter().map(|k| k.to_string()).collect(),
            values: values.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_utf16le_with_their_nul() {
        let v = RegValue::sz("Ré");
        assert_eq!(v.data, [b'R', 0, 0xe9, 0, 0, 0]);
        assert_eq!(v.string().as_deref(), Some("Ré"));
        assert_eq!(RegValue::dword(0x10).dword_value(), Some(0x10));
        assert_eq!(RegValue::dword(1).string(), None);
        let odd = RegValue {
            kind: REG_SZ,
            data: vec![1, 2, 3],
        };
        assert_eq!(odd.string(), None, "hostile: an odd byte count");
    }
}
