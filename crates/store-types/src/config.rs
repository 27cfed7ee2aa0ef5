//! Small configuration and notification types.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

/// Which store holds a resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StoreType {
    /// Every object in memory (`store: full`, also accepted: `memory`).
    #[default]
    #[serde(rename = "full", alias = "memory")]
    Memory,
    /// References in memory, objects fetched on demand (`store: on-demand`, also: `cached`).
    #[serde(rename = "on-demand", alias = "cached")]
    Cached,
}

impl fmt::Display for StoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreType::Memory => "full",
            StoreType::Cached => "on-demand",
        })
    }
}

/// An unknown store type name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown store type {given:?}: expected one of full, memory, on-demand, cached")]
pub struct ParseStoreTypeError {
    /// What was given.
    pub given: String,
}

impl FromStr for StoreType {
    type Err = ParseStoreTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" | "memory" => Ok(StoreType::Memory),
            "on-demand" | "cached" => Ok(StoreType::Cached),
            _ => Err(ParseStoreTypeError { given: s.to_owned() }),
        }
    }
}

/// What changed in a store since the last notification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeStats {
    /// Objects added.
    pub created: u64,
    /// Objects replaced.
    pub modified: u64,
    /// Objects removed.
    pub deleted: u64,
    /// True when these changes are (part of) the initial sync.
    pub is_initial_sync: bool,
}

impl ChangeStats {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.created == 0 && self.modified == 0 && self.deleted == 0
    }

    /// Total number of changes.
    pub fn total(&self) -> u64 {
        self.created + self.modified + self.deleted
    }
}

impl AddAssign for ChangeStats {
    /// Sums the counts; the result is an initial sync only if both parts are.
    fn add_assign(&mut self, rhs: Self) {
        let was_empty = self.is_empty();
        self.created += rhs.created;
        self.modified += rhs.modified;
        self.deleted += rhs.deleted;
        self.is_initial_sync =
            if was_empty { rhs.is_initial_sync } else { self.is_initial_sync && rhs.is_initial_sync };
    }
}

impl Add for ChangeStats {
    type Output = ChangeStats;
    fn add(mut self, rhs: Self) -> Self {
        self += rhs;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_type_parses_both_spellings() {
        for (s, t) in [
            ("full", StoreType::Memory),
            ("memory", StoreType::Memory),
            ("on-demand", StoreType::Cached),
            ("cached", StoreType::Cached),
        ] {
            assert_eq!(s.parse::<StoreType>().unwrap(), t);
            let json: StoreType = serde_json::from_str(&format!("{s:?}")).unwrap();
            assert_eq!(json, t);
        }
        assert_eq!(StoreType::Cached.to_string(), "on-demand");
        let err = "ondemand".parse::<StoreType>().unwrap_err();
        assert!(err.to_string().contains("\"ondemand\""));
        assert!(serde_json::from_str::<StoreType>("\"x\"").is_err());
    }

    #[test]
    fn change_stats_sum() {
        let a = ChangeStats { created: 1, is_initial_sync: true, ..Default::default() };
        let b = ChangeStats { deleted: 2, ..Default::default() };
        let s = a + b;
        assert_eq!((s.created, s.deleted, s.total(), s.is_initial_sync), (1, 2, 3, false));
        assert!(ChangeStats::default().is_empty());
        assert!((ChangeStats::default() + a).is_initial_sync);
    }
}
