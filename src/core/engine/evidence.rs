//! Checklist items ticked by evidence (CI for the version's commit): the first reading when
//! the checklist opens (and again after a restart), each verdict, the re-reading of one that is
//! not green until the checklist closes, and the break-glass override with a reason. A
//! person's reaction never ticks such an item (`checklist.rs` refuses it).

use super::wording;
use super::{Action, Engine, Phase, Reply, Timer, Tx, What};
use crate::core::evidence::{Override, Verdict};
use crate::core::message::{MsgKey, Post, Room};
use crate::core::{RunId, UserId};

impl Engine {
    /// The text of item `i`'s thread reply (reviewed or evidence), as the run stands.
    pub(super) fn item_post(&self, id: RunId, i: usize) -> Post {
        let run = &self.runs[&id];
        let recheck = self.env_rules(&run.env).evidence(i).map(|e| e.recheck());
        let text = wording::item_line(&run.checklist, i, &run.version, recheck);
        Post::top(&run.env, Room::Deploys, text)
            .keyed(MsgKey::Item(id, i))
            .in_thread(id)
    }

    /// Asks for a reading of every evidence item of run `id` that is not ticked yet (the
    /// checklist just opened, or the bot restarted while it was open).
    pub(super) fn read_all_evidence(&mut self, tx: &mut Tx, id: RunId) {
        let open: Vec<usize> = self.runs[&id]
            .checklist
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.evidence.as_ref().is_some_and(|p| !p.passed()))
            .map(|(i, _)| i)
            .collect();
        for i in open {
            self.read_evidence(tx, id, i);
        }
    }

    fn read_evidence(&mut self, tx: &mut Tx, id: RunId, item: usize) {
        let run = &self.runs[&id];
        let Some(evidence) = self.env_rules(&run.env).evidence(item).cloned() else {
            return;
        };
        tx.action(Action::CheckEvidence {
            run: id,
            attempt: run.attempt,
            env: run.env.clone(),
            item,
            version: run.version.clone(),
            evidence,
        });
    }

    /// The re-reading timer of item `item` fired: read it again while the checklist is open
    /// and the item is not ticked.
    pub(super) fn evidence_due(&mut self, tx: &mut Tx, id: RunId, item: usize) {
        if self.expire_if_due(tx, id) {
            return;
        }
        let Some(run) = self.runs.get(&id) else {
            return;
        };
        let open = run.phase == Phase::AwaitingChecklist
            && run
                .checklist
                .items
                .get(item)
                .and_then(|it| it.evidence.as_ref())
                .is_some_and(|p| !p.passed());
        if open {
            self.read_evidence(tx, id, item);
        }
    }

    /// A reading came back. A new verdict is recorded and shown on the item's line; green ticks
    /// the item (and may complete the checklist); anything else is read again later, until
    /// the checklist closes.
    pub(super) fn evidence_result(&mut self, tx: &mut Tx, id: RunId, item: usize, v: Verdict) {
        let env = self.runs[&id].env.clone();
        let Some(recheck) = self.env_rules(&env).evidence(item).map(|e| e.recheck()) else {
            return;
        };
        let run = self.run_mut(id);
        let Some(proof) = run
            .checklist
            .items
            .get_mut(item)
            .and_then(|it| it.evidence.as_mut())
        else {
            return;
        };
        if proof.passed() {
            return;
        }
        let green = v.is_green();
        if proof.verdict.as_ref() != Some(&v) {
            proof.verdict = Some(v.clone());
            tx.event(
                id,
                None,
                What::Evidence {
                    item,
                    verdict: wording::verdict(&v),
                },
            );
            let post = self.item_post(id, item).editing();
            tx.post(post);
        }
        if green {
            if self.runs[&id].checklist.complete() {
                self.checklist_complete(tx, id);
            }
            return;
        }
        let at = tx.now + super::to_std(recheck);
        if at < self.runs[&id].checklist_expires {
            tx.timer(at, Timer::Evidence(id, item));
        }
    }

    /// `/deploy override <run> <item> "<reason>"`: a member of break-glass ticks an evidence
    /// item that is not green, with a reason; audited and announced. Never the requester's own
    /// run (no self-approval), never an item reviewers tick.
    pub(super) fn override_evidence(
        &mut self,
        tx: &mut Tx,
        user: &UserId,
        id: RunId,
        item: usize,
        reason: String,
    ) -> Reply {
        let Some(run) = self.runs.get(&id) else {
            return Reply::private(wording::not_active(id));
        };
        if run.phase != Phase::AwaitingChecklist {
            return Reply::private(wording::override_closed(id, run.phase));
        }
        if !self.rules.in_group(user, "break-glass") {
            return Reply::private(wording::override_not_break_glass(user));
        }
        if *user == run.requester {
            return Reply::private(wording::override_own_run(user, id));
        }
        let Some(it) = run.checklist.items.get(item) else {
            return Reply::private(wording::no_such_item(id, item, run.checklist.items.len()));
        };
        let Some(proof) = &it.evidence else {
            return Reply::private(wording::not_evidence_item(id, item, &it.text));
        };
        if proof.passed() {
            return Reply::private(wording::already_ticked(id, item, &it.text));
        }
        let said = proof.verdict.as_ref().map(wording::verdict);
        let (env, text, version) = (run.env.clone(), it.text.clone(), run.version.clone());
        let run = self.run_mut(id);
        if let Some(p) = run.checklist.items[item].evidence.as_mut() {
            p.overridden = Some(Override {
                by: user.clone(),
                reason: reason.clone(),
            });
        }
        tx.event(
            id,
            Some(user),
            What::EvidenceOverridden {
                item,
                reason: reason.clone(),
            },
        );
        let post = self.item_post(id, item).editing();
        tx.post(post);
        let display = self.display(&env);
        let note = wording::evidence_overridden(
            user,
            id,
            &version,
            &display,
            item,
            &text,
            &reason,
            said.as_deref(),
        );
        tx.say_in_thread(&env, id, note.clone());
        tx.post(Post::top(&env, Room::Announce, note));
        if self.runs[&id].checklist.complete() {
            self.checklist_complete(tx, id);
        }
        Reply::public(wording::override_answer(id, item))
    }
}
