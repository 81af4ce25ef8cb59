//! The keys service's view of the orgs service: who a principal acts as in an org, as
//! the keys rules need it (the membership a new credential is authorized on).

use keyplane_common::{
    authz::{Action, Role},
    orgs_peer::OrgsPeer,
    principal::Principal,
};
use uuid::Uuid;

use crate::{domain::grant::Membership, error::Error};

/// Who a principal acts as in an org: its role (a key's or token's creator's), and the
/// membership that gives it (None for services).
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    pub role: Option<Role>,
    pub membership: Option<Membership>,
}

#[derive(Clone)]
pub struct Orgs {
    pub peer: OrgsPeer,
}

impl Orgs {
    /// Ok with the standing the principal acts on (a user's own membership; a key's or
    /// token's creator's), or the orgs service's refusal as it is.
    pub async fn require(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Standing, Error> {
        let answer = self.peer.authorize(principal, org_id, action).await.map_err(Error::upstream)?;
        let membership =
            principal.user_id().zip(answer.member_since).map(|(user_id, since)| Membership { user_id, since });
        Ok(Standing { role: answer.role, membership })
    }
}
