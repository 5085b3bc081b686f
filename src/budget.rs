//! The budget group of a request: the first of `budget_groups` the user is in, else
//! `default_budget_group`. It keys the rate-limit service's token budgets and the usage metrics.

use crate::identity::encode_group;

/// A configured budget group, with its form in the groups header computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetGroup {
    pub name: String,
    encoded: String,
}

impl BudgetGroup {
    pub fn new(name: &str) -> Self {
        BudgetGroup { name: name.to_owned(), encoded: encode_group(name) }
    }
}

/// Index into `groups` of the request's budget group, `None` for the default. `groups_header` is
/// the identity's groups header value (comma-separated, each group encoded by `encode_group`).
pub fn choose(groups: &[BudgetGroup], groups_header: &str) -> Option<usize> {
    if groups_header.is_empty() {
        return None;
    }
    groups.iter().position(|g| groups_header.split(',').any(|member| member == g.encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_configured_group_the_user_is_in() {
        let groups: Vec<BudgetGroup> =
            ["research", "eng", "a,b"].iter().map(|g| BudgetGroup::new(g)).collect();
        assert_eq!(choose(&groups, "eng,research"), Some(0));
        assert_eq!(choose(&groups, "sales,eng"), Some(1));
        assert_eq!(choose(&groups, "a%2Cb"), Some(2));
        assert_eq!(choose(&groups, "a,b"), None);
        assert_eq!(choose(&groups, "engineering,res"), None);
        assert_eq!(choose(&groups, ""), None);
        assert_eq!(choose(&[], "eng"), None);
    }
}
