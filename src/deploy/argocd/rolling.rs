//! The rolling mode: one application updated in place, so the driver is also the traffic
//! step. `deploy` records the rollback target, `switch` is the rolling update, `switch_back`
//! turns auto-sync off (if on) and rolls back; see the module comment of `argocd`.

use super::{line, ArgoDriver};
use crate::core::engine::LiveView;
use crate::core::Colour;
use crate::deploy::{BoxFuture, StepCtx, TrafficStep};
use crate::remote::ErrorKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// Rolling: what the run's deploy step found (the switch reads the version from it).
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Planned {
    app: String,
    version: String,
    previous_id: Option<i64>,
}

/// Rolling: which history id each colour names, and which one is live.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Lineage {
    live: Option<Colour>,
    blue: Option<i64>,
    green: Option<i64>,
}

impl Lineage {
    fn id(&self, c: Colour) -> Option<i64> {
        match c {
            Colour::Blue => self.blue,
            Colour::Green => self.green,
        }
    }
    fn set(&mut self, c: Colour, id: Option<i64>) {
        match c {
            Colour::Blue => self.blue = id,
            Colour::Green => self.green = id,
        }
    }
}

impl ArgoDriver {
    /// The environment's record (not the run's): it outlives runs.
    fn lineage_key(&self) -> String {
        format!("{}/argocd", self.env)
    }

    fn lineage(&self) -> Lineage {
        self.journal
            .get(&self.lineage_key())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The rolling deploy step: the application exists; its current history id is the
    /// rollback target, recorded once per run (a redeploy after a restart keeps the first).
    pub(super) async fn plan(
        &self,
        colour: Colour,
        version: &str,
        ctx: &StepCtx,
    ) -> Result<(), String> {
        let app = self.app_of(colour).to_string();
        let key = ctx.key("deploy");
        let planned = match self.journal.get::<Planned>(&key).ok().flatten() {
            Some(p) if p.version == version => p,
            _ => {
                let until = Instant::now() + self.cfg.timeout;
                let a = self.client.app(&app, until).await.map_err(|e| line(&e))?;
                let p = Planned {
                    app: app.clone(),
                    version: version.to_string(),
                    previous_id: a.current_id(),
                };
                self.put(&key, &p).await?;
                p
            }
        };
        let mut lineage = self.lineage();
        if planned.previous_id.is_some() {
            lineage.set(colour.other(), planned.previous_id);
            self.put(&self.lineage_key(), &lineage).await?;
        }
        ctx.note(format!(
            "Argo CD: {app} is updated in place at the switch (rolling){}",
            planned
                .previous_id
                .map(|id| format!("; rollback target: history id {id}"))
                .unwrap_or_default()
        ));
        Ok(())
    }

    async fn rolling_switch(&self, to: Colour, ctx: &StepCtx) -> Result<(), String> {
        let Some(p) = self
            .journal
            .get::<Planned>(&ctx.key("deploy"))
            .ok()
            .flatten()
        else {
            return Err(
                "Argo CD: this run's deploy step left no record; nothing was synced".into(),
            );
        };
        self.roll_out(&p.app, &p.version, &ctx.key("switch"), ctx)
            .await?;
        let until = Instant::now() + Duration::from_secs(30);
        let id = self
            .client
            .app(&p.app, until)
            .await
            .ok()
            .and_then(|a| a.current_id());
        let mut lineage = self.lineage();
        lineage.live = Some(to);
        lineage.set(to, id);
        self.put(&self.lineage_key(), &lineage).await
    }

    async fn rolling_switch_back(&self, to: Colour, ctx: &StepCtx) -> Result<(), String> {
        let app = self.app_of(to).to_string();
        let mut lineage = self.lineage();
        let Some(id) = lineage.id(to) else {
            return Err(format!("Argo CD: no history id is recorded for {to} of {app}; roll back by hand (argocd app history {app}, then argocd app rollback {app} ID)"));
        };
        let key = ctx.key("switch_back");
        let until = Instant::now() + self.cfg.timeout;
        let (mut rec, resumed) = self
            .start_record(&key, &app, &format!("history id {id}"), Some(id))
            .await?;
        let current = self.client.app(&app, until).await.map_err(|e| line(&e))?;
        // Argo CD refuses a rollback while auto-sync is on: turn it off first, and say so.
        if current.auto_sync() {
            self.client
                .disable_auto_sync(&app, until)
                .await
                .map_err(|e| {
                    format!(
                        "turning auto-sync off on {app} before the rollback: {}",
                        line(&e)
                    )
                })?;
            rec.disabled_auto_sync = true;
            self.put(&key, &rec).await?;
        }
        if rec.disabled_auto_sync {
            ctx.note(format!(
                "Argo CD: auto-sync of {app} is now OFF: Argo CD refuses a rollback while it is on, and turning it back on would re-deploy what git says. Revert the release in git, then turn it back on: argocd app set {app} --sync-policy automated"
            ));
        }
        if !(resumed && self.ours(&current, &rec).is_some()) {
            loop {
                match self.client.rollback(&app, id, until).await {
                    Ok(()) => break,
                    Err(e) if e.kind == ErrorKind::Uncertain => {
                        let a = self.client.app(&app, until).await.map_err(|e| line(&e))?;
                        if self.ours(&a, &rec).is_some() || Instant::now() >= until {
                            break;
                        }
                    }
                    Err(e) => {
                        return Err(format!(
                            "Argo CD refused to roll {app} back to history id {id}: {}",
                            e.detail.trim_start_matches("Argo CD: ")
                        ))
                    }
                }
            }
        }
        ctx.note(format!(
            "Argo CD: rolling {app} back to history id {id}: {}",
            self.link(&app)
        ));
        self.wait(&app, &rec, until).await?;
        lineage.live = Some(to);
        self.put(&self.lineage_key(), &lineage).await
    }
}

/// The rolling mode's traffic step (blue-green environments use haproxy or command).
impl TrafficStep for ArgoDriver {
    fn observe(&self) -> BoxFuture<'_, LiveView> {
        Box::pin(async move {
            let app = self.app_of(Colour::Blue).to_string();
            let until = Instant::now() + Duration::from_secs(5);
            match self.client.app(&app, until).await {
                Err(e) => LiveView::Unseen(line(&e)),
                Ok(a) => match self.lineage().live {
                    Some(c) => LiveView::Seen(Some(c)),
                    None if a.status.history.is_empty() => LiveView::Seen(None),
                    None => LiveView::Seen(Some(Colour::Blue)),
                },
            }
        })
    }

    fn switch<'a>(
        &'a self,
        to: Colour,
        _from: Option<Colour>,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.rolling_switch(to, ctx))
    }

    fn switch_back<'a>(
        &'a self,
        to: Colour,
        _from: Colour,
        ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.rolling_switch_back(to, ctx))
    }
}
