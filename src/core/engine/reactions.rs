//! Reactions and button clicks on a run's checklist: approvals, withdrawals, vetoes, and the
//! answer to one that does not count.

use super::wording;
use super::{Changes, Engine, Phase, RefusalsTo, Reply, Tx, What};
use crate::core::checklist::{self, Emoji, Target};
use crate::core::message::{MsgKey, Post, Room};
use crate::core::{EnvName, RunId, UserId};
use chrono::{DateTime, Utc};

impl Engine {
    /// A ✅/👍/❌ (or any emoji) added to or removed from a run's checklist message (`key`: the
    /// message's key; reactions on anything else are ignored).
    pub fn reaction(
        &mut self,
        user: &UserId,
        key: &str,
        emoji: &str,
        added: bool,
        now: DateTime<Utc>,
    ) -> Changes {
        self.reaction_in(Tx::new(now), user, key, emoji, added)
    }

    /// An Approve / Veto button click: counts exactly like the reaction; a click that does not
    /// count is answered to the clicking user only (`Changes.reply`, private).
    pub fn click(
        &mut self,
        user: &UserId,
        key: &str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> Changes {
        let mut tx = Tx::new(now);
        tx.refusals = RefusalsTo::Clicker;
        let emoji = if approve { "white_check_mark" } else { "x" };
        self.reaction_in(tx, user, key, emoji, true)
    }

    /// Tells `user` why their reaction or click does not count: to them only, once per run
    /// for each reason (a reaction added and removed five times is said once).
    fn refuse(&mut self, tx: &mut Tx, env: &EnvName, id: RunId, user: &UserId, why: String) {
        if tx.refusals == RefusalsTo::Clicker {
            tx.ch.reply = Some(Reply::private(why));
            return;
        }
        if let Some(run) = self.runs.get_mut(&id) {
            let key = format!("{user}: {why}");
            if run.told.contains(&key) {
                return;
            }
            run.told.push(key);
            tx.touch_run(id);
        }
        tx.post(
            Post::top(env, Room::Deploys, why)
                .in_thread(id)
                .only_for(user),
        );
    }

    fn reaction_in(
        &mut self,
        mut tx: Tx,
        user: &UserId,
        key: &str,
        emoji: &str,
        added: bool,
    ) -> Changes {
        let (id, target) = match MsgKey::parse(key) {
            Some(MsgKey::Checklist(id)) => (id, Target::Parent),
            Some(MsgKey::Item(id, i)) => (id, Target::Item(i)),
            _ => return tx.ch,
        };
        if checklist::classify(emoji) == Emoji::Other {
            return tx.ch;
        }
        // An approval that arrives after the expiry, before its timer fired, does not count.
        if self.expire_if_due(&mut tx, id) {
            if let (true, Some(env)) = (added, self.runs.get(&id).map(|r| r.env.clone())) {
                self.refuse(&mut tx, &env, id, user, wording::expired_reaction(user, id));
            }
            return self.finish(tx);
        }
        let Some(run) = self.runs.get(&id) else {
            if added {
                // A finished run: say why it does not count (the env is known from the store only).
                tx.ch.reply = Some(Reply::private(wording::over_reaction(user, id)));
            }
            return tx.ch;
        };
        if run.phase != Phase::AwaitingChecklist {
            if added {
                let (env, text) = (
                    run.env.clone(),
                    wording::closed_reaction(user, id, run.phase),
                );
                self.refuse(&mut tx, &env, id, user, text);
            }
            return self.finish(tx);
        }
        self.count(&mut tx, id, user, target, emoji, added);
        self.finish(tx)
    }

    /// Counts a reaction on an open checklist, and says what it changed.
    fn count(
        &mut self,
        tx: &mut Tx,
        id: RunId,
        user: &UserId,
        target: Target,
        emoji: &str,
        added: bool,
    ) {
        let rules = self.rules.clone();
        let in_group = |u: &UserId, g: &str| rules.in_group(u, g);
        let run = self.run_mut(id);
        let (env, requester) = (run.env.clone(), run.requester.clone());
        let outcome = match target {
            // A person's approval is not evidence: say how this item is ticked.
            Target::Item(i)
                if added
                    && checklist::classify(emoji) == Emoji::Approve
                    && run.checklist.veto.is_none()
                    && run
                        .checklist
                        .items
                        .get(i)
                        .is_some_and(|it| it.evidence.is_some()) =>
            {
                let text = run.checklist.items[i].text.clone();
                checklist::Outcome::NotCounted(wording::evidence_reaction(user, id, i, &text))
            }
            _ => run
                .checklist
                .react_as(&requester, user, &in_group, target, emoji, added),
        };
        match outcome {
            checklist::Outcome::Ignored => {}
            checklist::Outcome::Noted => tx.touch_run(id),
            checklist::Outcome::NotCounted(why) => {
                tx.event(id, Some(user), What::NotCounted(why.clone()));
                self.refuse(tx, &env, id, user, why);
            }
            checklist::Outcome::Withdrawn { item } => {
                tx.event(id, Some(user), What::Withdrew { item });
                tx.post(self.item_post(id, item).editing());
            }
            checklist::Outcome::Approved { item, complete } => {
                tx.event(id, Some(user), What::Approved { item });
                tx.post(self.item_post(id, item).editing());
                if complete {
                    self.checklist_complete(tx, id);
                }
            }
            checklist::Outcome::Vetoed => {
                let text = wording::vetoed(&self.runs[&id], user, &self.display(&env));
                tx.event(id, Some(user), What::Vetoed);
                self.end(tx, id, Phase::Vetoed, wording::outcome::vetoed(user));
                tx.say_in_thread(&env, id, text);
            }
        }
    }
}
