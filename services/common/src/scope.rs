//! Scopes: what a key or token may do. A key without a scope list has full permission.

use std::collections::BTreeSet;

/// Every scope a key can hold, in the order the contract lists them.
pub const CATALOGUE: &[&str] = &[
    "read:orgs",
    "write:orgs",
    "read:keys",
    "write:keys",
    "read:usage",
    "read:families",
    "write:families",
    "read:policies",
    "write:policies",
];

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scopes {
    Full,
    Only(BTreeSet<String>),
}

/// Scopes outside the catalogue, named so the caller can fix them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scopes {}; valid scopes are: {}", .unknown.join(", "), CATALOGUE.join(", "))]
pub struct UnknownScopes {
    pub unknown: Vec<String>,
}

impl Scopes {
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, UnknownScopes> {
        let unknown: Vec<String> =
            list.iter().map(AsRef::as_ref).filter(|s| !CATALOGUE.contains(s)).map(str::to_owned).collect();
        if !unknown.is_empty() {
            return Err(UnknownScopes { unknown });
        }
        Ok(Self::Only(list.iter().map(|s| s.as_ref().to_owned()).collect()))
    }

    /// From a stored or transmitted form: `full` wins over the list.
    pub fn from_parts(full: bool, list: &[String]) -> Self {
        if full { Self::Full } else { Self::Only(list.iter().cloned().collect()) }
    }

    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full)
    }

    pub fn allows(&self, scope: &str) -> bool {
        match self {
            Self::Full => true,
            Self::Only(set) => set.contains(scope),
        }
    }

    /// Whether every permission of `other` is also ours: a key may only grant what it holds.
    pub fn covers(&self, other: &Scopes) -> bool {
        match (self, other) {
            (Self::Full, _) => true,
            (Self::Only(_), Self::Full) => false,
            (Self::Only(mine), Self::Only(theirs)) => theirs.is_subset(mine),
        }
    }

    /// The explicit list, empty for full permission (paired with `is_full`).
    pub fn list(&self) -> Vec<String> {
        match self {
            Self::Full => Vec::new(),
            Self::Only(set) => set.iter().cloned().collect(),
        }
    }

    /// The effective list shown to users: the whole catalogue for full permission.
    pub fn effective(&self) -> Vec<String> {
        self.effective_names().into_iter().map(str::to_owned).collect()
    }

    /// [`Self::effective`], borrowed: for answers written on the hot path.
    pub fn effective_names(&self) -> Vec<&str> {
        match self {
            Self::Full => CATALOGUE.to_vec(),
            Self::Only(set) => set.iter().map(String::as_str).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scopes_are_named_with_the_valid_ones() {
        let err = Scopes::parse(&["read:orgs", "calls:create"]).unwrap_err();
        assert_eq!(err.unknown, vec!["calls:create"]);
        let message = err.to_string();
        assert!(message.contains("calls:create") && message.contains("write:families"));
    }

    #[test]
    fn coverage_never_widens() {
        let read = Scopes::parse(&["read:keys"]).unwrap();
        let both = Scopes::parse(&["read:keys", "write:keys"]).unwrap();
        assert!(both.covers(&read));
        assert!(!read.covers(&both));
        assert!(!both.covers(&Scopes::Full));
        assert!(Scopes::Full.covers(&both));
        assert!(Scopes::parse::<&str>(&[]).unwrap().list().is_empty());
    }
}
