//! After a rollback, the bad release's changes are still on the default branch: where the
//! environment asks for it, greenlight proposes a revert for review (a pull or merge request,
//! never a push). The rollback's run has ended by then, so the request is kept in the
//! environment's state until the revert step answers, and asked again after a restart; the
//! step itself finds a revert it already opened rather than opening a second one.

use super::wording;
use super::RevertLink;
use super::{Action, Engine, RunKind, Tx, What};
use crate::core::message::{Post, Room};
use crate::core::state::{PendingRevert, Run};
use crate::core::{EnvName, RunId};
use chrono::{DateTime, Utc};

impl Engine {
    /// Run `run` rolled a release back: ask for its revert, if the environment wants one and
    /// there is a version to go back to.
    pub(super) fn ask_revert(&mut self, tx: &mut Tx, run: &Run) {
        if !self.env_rules(&run.env).revert {
            return;
        }
        let (bad, good) = match run.kind {
            RunKind::Deploy => (Some(run.version.clone()), run.from_version.clone()),
            RunKind::Rollback => (run.from_version.clone(), Some(run.version.clone())),
        };
        let (Some(bad), Some(good)) = (bad, good) else {
            return;
        };
        if bad == good {
            return;
        }
        let pending = PendingRevert {
            run: run.id,
            bad: bad.clone(),
            good: good.clone(),
        };
        self.env_mut(&run.env).revert = Some(pending);
        tx.touch_env(&run.env);
        tx.say_in_thread(&run.env, run.id, wording::revert_asked(&bad, &good));
        tx.action(Action::Revert {
            run: run.id,
            env: run.env.clone(),
            bad,
            good,
        });
    }

    /// The revert step answered for run `id`: the link (or why not) goes to the run's thread
    /// and the incident channel, and into the run's audit log.
    pub(super) fn reverted(
        &mut self,
        id: RunId,
        result: Result<RevertLink, String>,
        now: DateTime<Utc>,
    ) -> super::Changes {
        let mut tx = Tx::new(now);
        let Some((env, pending)) = self.envs.iter().find_map(|(k, st)| {
            st.revert
                .clone()
                .filter(|p| p.run == id)
                .map(|p| (k.clone(), p))
        }) else {
            return tx.ch;
        };
        self.env_mut(&env).revert = None;
        tx.touch_env(&env);
        let display = self.display(&env);
        let text = match &result {
            Ok(link) => wording::revert_opened(&pending.bad, &pending.good, &link.name, &link.url),
            Err(why) => wording::revert_failed(&pending.bad, why),
        };
        tx.event(id, None, What::Revert(text.clone()));
        tx.say_in_thread(&env, id, text.clone());
        let alert = wording::incident(&display, &text, &self.link(id));
        tx.post(Post::top(&env, Room::Incidents, alert));
        self.finish(tx)
    }

    /// After a restart: every revert asked for and not answered is asked again.
    pub fn restart_reverts(&mut self, now: DateTime<Utc>) -> super::Changes {
        let mut tx = Tx::new(now);
        let pending: Vec<(EnvName, PendingRevert)> = self
            .envs
            .iter()
            .filter_map(|(k, st)| st.revert.clone().map(|p| (k.clone(), p)))
            .collect();
        for (env, p) in pending {
            tx.say_in_thread(&env, p.run, wording::revert_resumed(&p.bad));
            tx.action(Action::Revert {
                run: p.run,
                env,
                bad: p.bad,
                good: p.good,
            });
        }
        self.finish(tx)
    }
}
