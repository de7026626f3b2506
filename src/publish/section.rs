//! The recipe's `publish:` section: each target's settings parsed by its record as the
//! recipe is read (errors keep their line and column), with the command line's `--set`s
//! on top for the targets they name.

use super::target::{Item, Target};
use std::path::PathBuf;

/// The recipe's `publish:` mapping, in the order written, each value parsed by its target.
#[derive(Debug, Default)]
pub struct Section(pub Vec<Item>);

impl Section {
    #[cfg(test)]
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|i| i.name.as_str()).collect()
    }

    /// A child recipe's targets replace the parent's of the same name; others are kept.
    pub fn merge(&mut self, child: Section) {
        for item in child.0 {
            match self.0.iter().position(|i| i.name == item.name) {
                Some(i) => self.0[i] = item,
                None => self.0.push(item),
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Section {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SectionVisitor)
    }
}

struct SectionVisitor;

impl<'de> serde::de::Visitor<'de> for SectionVisitor {
    type Value = Section;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a mapping of publish target name to settings")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Section, E> {
        Ok(Section::default())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Section, A::Error> {
        let mut items: Vec<Item> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if items.iter().any(|i| i.name == name) {
                return Err(serde::de::Error::custom(format!("publish target `{name}` given twice")));
            }
            let target = map.next_value_seed(Seed(&name))?;
            items.push(Item {
                name,
                target,
                origin: PathBuf::new(),
                settings: serde_yaml::Value::Null,
            });
        }
        Ok(Section(items))
    }
}

struct Seed<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_> {
    type Value = Box<dyn Target>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let sets = super::overrides::loading(self.0);
        if sets.is_empty() {
            // Straight from the YAML: errors keep the setting's own line and column.
            return super::build(self.0, d);
        }
        // With `--set`s on top: checked as a whole (errors at the target's position).
        use serde::Deserialize;
        let base = serde_yaml::Value::deserialize(d)?;
        match super::overrides::build(self.0, &base, &sets) {
            Ok(Some((target, _))) => Ok(target),
            Ok(None) => super::build(self.0, base).map_err(serde::de::Error::custom),
            Err(e) => Err(serde::de::Error::custom(format!("{e:#}"))),
        }
    }
}
