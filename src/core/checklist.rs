//! The pre-deployment checklist: items, eligible approvers, quorum, no self-approval, veto,
//! withdrawal. Pure: group membership comes in as a function.

use super::evidence::Proof;
use super::UserId;
use serde::{Deserialize, Serialize};

/// What a reaction means. Emoji are Slack short names; skin tones count as the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emoji {
    Approve,
    Veto,
    Other,
}

/// One emoji's canonical short name: skin tones count as the base, `thumbsup` and 👍 are `+1`,
/// ✅ is `white_check_mark`, ❌ is `x`.
pub fn base_name(short_name: &str) -> String {
    let name = short_name.trim().trim_matches(':');
    let base = name.split("::").next().unwrap_or(name);
    match base {
        "thumbsup" | "👍" => "+1".into(),
        "✅" => "white_check_mark".into(),
        "❌" => "x".into(),
        other => other.to_string(),
    }
}

pub fn classify(short_name: &str) -> Emoji {
    let name = short_name.trim().trim_matches(':');
    let base = name.split("::").next().unwrap_or(name);
    match base {
        "white_check_mark" | "+1" | "thumbsup" | "heavy_check_mark" | "✅" | "👍" => {
            Emoji::Approve
        }
        "x" | "❌" => Emoji::Veto,
        _ => Emoji::Other,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub text: String,
    pub group: String,
    pub needed: u32,
    pub approvers: Vec<UserId>,
    /// Which approving emoji each approver has on the item (✅ and 👍 both count): an approval
    /// is withdrawn only when the last one is removed. Approvers from records written before
    /// this field existed have none, so any removal withdraws theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<(UserId, String)>,
    /// An item ticked by evidence (CI) rather than by reviewers: no reaction counts on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Proof>,
}

impl Item {
    pub fn done(&self) -> bool {
        match &self.evidence {
            Some(p) => p.passed(),
            None => self.approvers.len() as u32 >= self.needed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Veto {
    pub by: UserId,
    /// The item vetoed on, or `None` for the parent message.
    pub item: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Checklist {
    pub items: Vec<Item>,
    pub veto: Option<Veto>,
}

/// Where a reaction was put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Parent,
    Item(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The approval counts; `complete` when the whole checklist is now satisfied.
    Approved {
        item: usize,
        complete: bool,
    },
    /// An approval was removed while the checklist was open.
    Withdrawn {
        item: usize,
    },
    Vetoed,
    /// Nothing changed and nothing needs saying (another emoji, a repeated reaction).
    Ignored,
    /// Nothing visible changed, but which emoji an approver has on an item did (to be kept).
    Noted,
    /// A ✅/👍/❌ that does not count; the reason is said in the thread.
    NotCounted(String),
}

impl Checklist {
    pub fn new(items: impl IntoIterator<Item = (String, String, u32)>) -> Self {
        Checklist {
            items: items
                .into_iter()
                .map(|(text, group, needed)| Item {
                    text,
                    group,
                    needed,
                    approvers: Vec::new(),
                    marks: Vec::new(),
                    evidence: None,
                })
                .collect(),
            veto: None,
        }
    }

    pub fn complete(&self) -> bool {
        self.veto.is_none() && self.items.iter().all(Item::done)
    }

    /// The groups whose members may review, in order of first appearance.
    pub fn groups(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for i in &self.items {
            if !out.contains(&i.group.as_str()) {
                out.push(&i.group);
            }
        }
        out
    }

    /// Applies a reaction of a kind (as its usual emoji). `in_group(user, group)` answers
    /// membership.
    pub fn react(
        &mut self,
        requester: &UserId,
        user: &UserId,
        in_group: &dyn Fn(&UserId, &str) -> bool,
        target: Target,
        emoji: Emoji,
        added: bool,
    ) -> Outcome {
        let name = match emoji {
            Emoji::Approve => "white_check_mark",
            Emoji::Veto => "x",
            Emoji::Other => "",
        };
        self.react_as(requester, user, in_group, target, name, added)
    }

    /// Applies the reaction `name` (a short name, any alias).
    pub fn react_as(
        &mut self,
        requester: &UserId,
        user: &UserId,
        in_group: &dyn Fn(&UserId, &str) -> bool,
        target: Target,
        name: &str,
        added: bool,
    ) -> Outcome {
        let emoji = classify(name);
        let name = base_name(name);
        if emoji == Emoji::Other {
            return Outcome::Ignored;
        }
        if self.veto.is_some() {
            return if added {
                Outcome::NotCounted("the run was already vetoed; a veto is final".into())
            } else {
                Outcome::Ignored
            };
        }
        match (emoji, target) {
            (Emoji::Veto, _) if !added => Outcome::Ignored,
            (Emoji::Veto, target) => self.veto_by(requester, user, in_group, target),
            (Emoji::Approve, Target::Parent) if added => Outcome::NotCounted(format!(
                "{user}'s approval on the checklist message does not count: approve each item's reply in the thread"
            )),
            (Emoji::Approve, Target::Parent) => Outcome::Ignored,
            (Emoji::Approve, Target::Item(i)) if added => {
                self.approve(requester, user, in_group, i, name)
            }
            (Emoji::Approve, Target::Item(i)) => self.withdraw(user, i, &name),
            (Emoji::Other, _) => Outcome::Ignored,
        }
    }

    fn veto_by(
        &mut self,
        requester: &UserId,
        user: &UserId,
        in_group: &dyn Fn(&UserId, &str) -> bool,
        target: Target,
    ) -> Outcome {
        if user == requester {
            return Outcome::NotCounted(format!(
                "{}'s ❌ does not count: the requester cannot veto their own run (use /deploy cancel)",
                user
            ));
        }
        let eligible = match target {
            Target::Parent => self.groups().iter().any(|g| in_group(user, g)),
            Target::Item(i) => self
                .items
                .get(i)
                .is_some_and(|it| in_group(user, &it.group)),
        };
        if !eligible {
            let groups = match target {
                Target::Parent => self.groups().join(", "),
                Target::Item(i) => self
                    .items
                    .get(i)
                    .map(|it| it.group.clone())
                    .unwrap_or_default(),
            };
            return Outcome::NotCounted(format!(
                "{user}'s ❌ does not count: only members of {groups} may veto here"
            ));
        }
        self.veto = Some(Veto {
            by: user.clone(),
            item: match target {
                Target::Parent => None,
                Target::Item(i) => Some(i),
            },
        });
        Outcome::Vetoed
    }

    /// An approving emoji removed from item `i`: the approval stands while another approving
    /// emoji of the same person remains.
    fn withdraw(&mut self, user: &UserId, i: usize, name: &str) -> Outcome {
        let Some(item) = self.items.get_mut(i) else {
            return Outcome::Ignored;
        };
        let had = item.marks.len();
        item.marks.retain(|(u, e)| !(u == user && e == name));
        if item.marks.iter().any(|(u, _)| u == user) {
            // Another approving emoji of theirs is still on the item.
            return Outcome::Noted;
        }
        match item.approvers.iter().position(|u| u == user) {
            Some(p) => {
                item.approvers.remove(p);
                Outcome::Withdrawn { item: i }
            }
            None if item.marks.len() != had => Outcome::Noted,
            None => Outcome::Ignored,
        }
    }

    /// An approving emoji added to item `i`.
    fn approve(
        &mut self,
        requester: &UserId,
        user: &UserId,
        in_group: &dyn Fn(&UserId, &str) -> bool,
        i: usize,
        name: String,
    ) -> Outcome {
        let Some(item) = self.items.get_mut(i) else {
            return Outcome::Ignored;
        };
        if item.evidence.is_some() {
            // Never a tick without evidence: a person's reaction is not evidence (the engine
            // answers it before it gets here, naming the run; this is the rule's own guard).
            return Outcome::NotCounted(format!(
                "{user}'s approval of \"{}\" does not count: CI evidence ticks this item by itself",
                item.text
            ));
        }
        if user == requester {
            return Outcome::NotCounted(format!(
                "{user}'s approval of \"{}\" does not count: the requester cannot approve their own run",
                item.text
            ));
        }
        if !in_group(user, &item.group) {
            return Outcome::NotCounted(format!(
                "{user}'s approval of \"{}\" does not count: it needs a member of {}",
                item.text, item.group
            ));
        }
        let mark = (user.clone(), name);
        let new_mark = !item.marks.contains(&mark);
        if new_mark {
            item.marks.push(mark);
        }
        if item.approvers.contains(user) {
            return if new_mark {
                Outcome::Noted
            } else {
                Outcome::Ignored
            };
        }
        item.approvers.push(user.clone());
        Outcome::Approved {
            item: i,
            complete: self.complete(),
        }
    }

    /// Everyone who approved something, in order, once each.
    pub fn approvers(&self) -> Vec<UserId> {
        let mut out: Vec<UserId> = Vec::new();
        for i in &self.items {
            for u in &i.approvers {
                if !out.contains(u) {
                    out.push(u.clone());
                }
            }
        }
        out
    }

    /// The text of item `i`'s thread reply, with its approval count.
    pub fn item_line(&self, i: usize) -> String {
        let it = &self.items[i];
        let mark = if it.done() { "✅" } else { "⬜" };
        let who = if it.approvers.is_empty() {
            String::new()
        } else {
            format!(
                " by {}",
                it.approvers
                    .iter()
                    .map(|u| u.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "{mark} {}. {} ({}/{} from {}{who})",
            i + 1,
            it.text,
            it.approvers.len().min(it.needed as usize),
            it.needed,
            it.group
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(u: &UserId, g: &str) -> bool {
        match u.0.as_str() {
            "alice" => ["deployers", "reviewers", "break-glass"].contains(&g),
            "bob" => ["deployers", "reviewers"].contains(&g),
            "carol" => g == "reviewers",
            "dave" => g == "dba",
            _ => false,
        }
    }

    fn u(s: &str) -> UserId {
        UserId::new(s)
    }

    fn list() -> Checklist {
        Checklist::new([
            ("CI passed".to_string(), "reviewers".to_string(), 1),
            ("Migrations reviewed".to_string(), "dba".to_string(), 1),
            ("Two eyes".to_string(), "reviewers".to_string(), 2),
        ])
    }

    #[test]
    fn emoji_classification() {
        for (n, e) in [
            ("white_check_mark", Emoji::Approve),
            (":white_check_mark:", Emoji::Approve),
            ("+1", Emoji::Approve),
            ("thumbsup", Emoji::Approve),
            ("+1::skin-tone-3", Emoji::Approve),
            ("x", Emoji::Veto),
            ("tada", Emoji::Other),
            ("heart", Emoji::Other),
        ] {
            assert_eq!(classify(n), e, "{n}");
        }
    }

    #[test]
    fn approvals_need_the_items_group_and_quorum() {
        let mut c = list();
        let req = u("alice");
        let r = c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Item(0),
            Emoji::Approve,
            true,
        );
        assert_eq!(
            r,
            Outcome::Approved {
                item: 0,
                complete: false
            }
        );
        // bob is not a dba
        let r = c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Item(1),
            Emoji::Approve,
            true,
        );
        assert!(
            matches!(r, Outcome::NotCounted(ref m) if m.contains("member of dba")),
            "{r:?}"
        );
        let r = c.react(
            &req,
            &u("dave"),
            &groups,
            Target::Item(1),
            Emoji::Approve,
            true,
        );
        assert_eq!(
            r,
            Outcome::Approved {
                item: 1,
                complete: false
            }
        );
        // the same person twice counts once
        c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Item(2),
            Emoji::Approve,
            true,
        );
        let r = c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Item(2),
            Emoji::Approve,
            true,
        );
        assert_eq!(r, Outcome::Ignored);
        assert!(!c.complete());
        let r = c.react(
            &req,
            &u("carol"),
            &groups,
            Target::Item(2),
            Emoji::Approve,
            true,
        );
        assert_eq!(
            r,
            Outcome::Approved {
                item: 2,
                complete: true
            }
        );
        assert!(c.complete());
        assert_eq!(c.approvers(), vec![u("bob"), u("dave"), u("carol")]);
    }

    #[test]
    fn no_self_approval_and_no_self_veto() {
        let mut c = list();
        let r = c.react(
            &u("alice"),
            &u("alice"),
            &groups,
            Target::Item(0),
            Emoji::Approve,
            true,
        );
        assert!(matches!(r, Outcome::NotCounted(ref m) if m.contains("cannot approve their own")));
        let r = c.react(
            &u("alice"),
            &u("alice"),
            &groups,
            Target::Parent,
            Emoji::Veto,
            true,
        );
        assert!(matches!(r, Outcome::NotCounted(ref m) if m.contains("cannot veto their own")));
        assert!(c.items[0].approvers.is_empty());
        assert!(c.veto.is_none());
    }

    #[test]
    fn withdrawal_and_veto() {
        let mut c = list();
        let req = u("alice");
        c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Item(0),
            Emoji::Approve,
            true,
        );
        let r = c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Item(0),
            Emoji::Approve,
            false,
        );
        assert_eq!(r, Outcome::Withdrawn { item: 0 });
        assert!(c.items[0].approvers.is_empty());
        // removing a reaction that never counted changes nothing
        assert_eq!(
            c.react(
                &req,
                &u("carol"),
                &groups,
                Target::Item(0),
                Emoji::Approve,
                false
            ),
            Outcome::Ignored
        );
        // an outsider's veto does not count
        let r = c.react(&req, &u("eve"), &groups, Target::Parent, Emoji::Veto, true);
        assert!(matches!(r, Outcome::NotCounted(_)));
        // an approve on the parent does not count
        let r = c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Parent,
            Emoji::Approve,
            true,
        );
        assert!(matches!(r, Outcome::NotCounted(ref m) if m.contains("each item")));
        // carol's veto on an item is final
        assert_eq!(
            c.react(
                &req,
                &u("carol"),
                &groups,
                Target::Item(0),
                Emoji::Veto,
                true
            ),
            Outcome::Vetoed
        );
        assert_eq!(
            c.react(
                &req,
                &u("carol"),
                &groups,
                Target::Item(0),
                Emoji::Veto,
                false
            ),
            Outcome::Ignored
        );
        assert!(c.veto.is_some());
        assert!(!c.complete());
        let r = c.react(
            &req,
            &u("bob"),
            &groups,
            Target::Item(0),
            Emoji::Approve,
            true,
        );
        assert!(matches!(r, Outcome::NotCounted(ref m) if m.contains("vetoed")));
        assert_eq!(
            c.react(
                &req,
                &u("bob"),
                &groups,
                Target::Item(0),
                Emoji::Other,
                true
            ),
            Outcome::Ignored
        );
    }

    #[test]
    fn no_reaction_ticks_an_evidence_item() {
        let mut c = list();
        c.items[0].evidence = Some(Proof::new(crate::core::evidence::EvidenceKind::Ci));
        let r = c.react(
            &u("alice"),
            &u("bob"),
            &groups,
            Target::Item(0),
            Emoji::Approve,
            true,
        );
        assert!(matches!(r, Outcome::NotCounted(ref m) if m.contains("CI evidence ticks")));
        assert!(c.items[0].approvers.is_empty() && !c.items[0].done());
    }

    #[test]
    fn item_lines() {
        let mut c = list();
        c.react(
            &u("alice"),
            &u("bob"),
            &groups,
            Target::Item(2),
            Emoji::Approve,
            true,
        );
        assert_eq!(c.item_line(2), "⬜ 3. Two eyes (1/2 from reviewers by bob)");
        c.react(
            &u("alice"),
            &u("carol"),
            &groups,
            Target::Item(2),
            Emoji::Approve,
            true,
        );
        assert_eq!(
            c.item_line(2),
            "✅ 3. Two eyes (2/2 from reviewers by bob, carol)"
        );
    }
}
