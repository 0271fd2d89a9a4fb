//! sled: runs with their event logs, environment state, the run counter and the local
//! channel's messages, in one tree with prefixed keys so that each change is one atomic batch,
//! flushed before the bot acts on it.

use crate::core::engine::{EnvState, Event, Run};
use crate::core::Platform;
use crate::core::{EnvName, RunId};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A message of the local channel, as the JSON API shows it (plus the internal key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalMessage {
    pub id: String,
    pub channel: String,
    pub user: String,
    pub text: String,
    pub thread_id: Option<String>,
    pub ts: DateTime<Utc>,
    pub visible_to: Option<String>,
    pub reactions: Vec<Reaction>,
    /// The core's message key (run threads, status messages); not part of the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<String>,
}

/// A chat message written in the same batch as the state change and delivered to a remote
/// platform later (at least once, in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub platform: Platform,
    /// The platform's channel id.
    pub channel: String,
    pub text: String,
    /// The core's key of this message (edits and threads refer to it).
    pub key: Option<String>,
    /// Key of the thread parent.
    pub thread_key: Option<String>,
    /// Replace the message with the same key if it was delivered.
    pub edit: bool,
    /// Carry Approve / Veto buttons (a checklist item).
    pub buttons: bool,
    /// Answer through a command's response URL instead of posting.
    pub respond_url: Option<String>,
    /// Only the given platform user sees it.
    pub ephemeral_to: Option<String>,
}

impl OutboxEntry {
    /// A plain new message to `channel`: no key, thread, buttons or private recipient.
    pub fn new(platform: Platform, channel: impl Into<String>, text: impl Into<String>) -> Self {
        OutboxEntry {
            platform,
            channel: channel.into(),
            text: text.into(),
            key: None,
            thread_key: None,
            edit: false,
            buttons: false,
            respond_url: None,
            ephemeral_to: None,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    t: sled::Tree,
    /// The local channel's change cursor: every message change with a sequence number up to it
    /// is written (see `messages_changed`). Messages are written by the event loop only.
    msg_cursor: Arc<AtomicU64>,
    /// The outbox's durable mark: every outbox entry with a sequence number up to it is flushed.
    /// sled shows a batch to readers as soon as it is applied, before the flush makes it
    /// durable; a deliverer that posted an entry in that window could post for an input a crash
    /// then loses. So deliverers see only entries at or below this mark.
    outbox_durable: Arc<AtomicU64>,
}

fn run_key(id: RunId) -> String {
    format!("run/{:020}", id.0)
}
/// The sequence number at the end of an outbox key (`outbox/<platform>/<seq:020>`).
fn outbox_seq(key: &[u8]) -> Option<u64> {
    let tail = key.rsplit(|&b| b == b'/').next()?;
    std::str::from_utf8(tail).ok()?.parse().ok()
}

fn msg_key(id: u64) -> String {
    format!("msg/{id:020}")
}
/// Change index of local messages: `mseq/<seq>` -> message id, and `mseqof/<id>` -> its
/// current seq. A message written before the index existed has neither (changed "at 0").
fn mseq_key(seq: u64) -> String {
    format!("mseq/{seq:020}")
}
fn mseqof_key(id: u64) -> String {
    format!("mseqof/{id:020}")
}
const MSG_CURSOR: &str = "meta/msg_cursor";
fn be_u64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

/// Everything one commit changes (one step, or every step of a group commit), written as one
/// batch with one flush. Reads through it see what it holds (messages, keys, runs, event ids)
/// before it is written, so a later step of a group sees the earlier ones.
pub struct WriteSet<'a> {
    store: &'a Store,
    batch: sled::Batch,
    msgs: BTreeMap<u64, LocalMessage>,
    keys: BTreeMap<String, u64>,
    idem: Vec<String>,
    /// The runs written, for `history` (newest state of each).
    runs: BTreeMap<RunId, Run>,
    pub new_messages: usize,
    pub outboxed: usize,
    /// The highest outbox sequence number in this batch.
    outbox_max: u64,
}

impl WriteSet<'_> {
    pub fn put_run(&mut self, run: &Run) {
        self.batch.insert(
            run_key(run.id).as_bytes(),
            serde_json::to_vec(run).expect("run json"),
        );
        let active = format!("active/{:020}", run.id.0);
        if run.phase.is_terminal() {
            self.batch.remove(active.as_bytes());
        } else {
            self.batch.insert(active.as_bytes(), &[]);
        }
        self.batch
            .insert(format!("hist/{}/{:020}", run.env, run.id.0).as_bytes(), &[]);
        self.runs.insert(run.id, run.clone());
    }
    pub fn put_env(&mut self, env: &EnvName, st: &EnvState) {
        self.batch.insert(
            format!("env/{env}").as_bytes(),
            serde_json::to_vec(st).expect("env json"),
        );
    }
    pub fn put_event(&mut self, ev: &Event) -> Result<()> {
        let seq = self.store.db.generate_id()?;
        self.batch.insert(
            format!("ev/{:020}/{seq:020}", ev.run.0).as_bytes(),
            serde_json::to_vec(ev).expect("event json"),
        );
        Ok(())
    }
    pub fn put_next_run(&mut self, n: u64) {
        self.batch.insert("meta/next_run", &n.to_be_bytes());
    }
    pub fn message(&self, id: u64) -> Result<Option<LocalMessage>> {
        if let Some(m) = self.msgs.get(&id) {
            return Ok(Some(m.clone()));
        }
        self.store.message(id)
    }
    pub fn id_for_key(&self, key: &str) -> Result<Option<u64>> {
        if let Some(id) = self.keys.get(key) {
            return Ok(Some(*id));
        }
        self.store.id_for_key(key)
    }
    /// Adds a new local message; returns its id.
    pub fn add_message(&mut self, mut m: LocalMessage) -> Result<u64> {
        let id = self.store.db.generate_id()? + 1;
        m.id = id.to_string();
        if let Some(k) = &m.key {
            self.keys.insert(k.clone(), id);
        }
        self.msgs.insert(id, m);
        self.new_messages += 1;
        Ok(id)
    }
    pub fn update_message(&mut self, id: u64, m: LocalMessage) {
        self.msgs.insert(id, m);
    }
    /// Queues a message for a remote platform.
    pub fn push_outbox(&mut self, e: &OutboxEntry) -> Result<()> {
        let seq = self.store.db.generate_id()?;
        self.batch.insert(
            format!("outbox/{}/{seq:020}", e.platform).as_bytes(),
            serde_json::to_vec(e).expect("outbox json"),
        );
        self.outboxed += 1;
        self.outbox_max = self.outbox_max.max(seq);
        Ok(())
    }
    /// Was this platform event id handled already (written, or held here)?
    pub fn seen(&self, platform: Platform, id: &str) -> Result<bool> {
        let k = format!("idem/{platform}/{id}");
        Ok(self.idem.contains(&k) || self.store.t.contains_key(k.as_bytes())?)
    }
    /// The newest `limit` runs of an environment, newest first, with the runs held here.
    pub fn history(&self, env: &EnvName, limit: usize) -> Result<Vec<Run>> {
        let mut runs: BTreeMap<RunId, Run> = self
            .store
            .history(env, limit)?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        for r in self.runs.values().filter(|r| &r.env == env) {
            runs.insert(r.id, r.clone());
        }
        Ok(runs.into_values().rev().take(limit).collect())
    }
    /// Records a platform event id; false if it was seen before (a redelivery).
    pub fn first_time(&mut self, platform: Platform, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let k = format!("idem/{platform}/{id}");
        if self.store.t.contains_key(k.as_bytes())? || self.idem.contains(&k) {
            return Ok(false);
        }
        self.batch
            .insert(k.as_bytes(), now.timestamp().to_be_bytes().as_slice());
        self.idem.push(k);
        Ok(true)
    }
    pub fn commit(mut self) -> Result<()> {
        // Every new or changed message gets a fresh change number, higher than any before
        // (sled's ids are monotonic across restarts); its previous index entry goes.
        let mut cursor = None;
        for (id, m) in &self.msgs {
            self.batch.insert(
                msg_key(*id).as_bytes(),
                serde_json::to_vec(m).expect("msg json"),
            );
            if let Some(old) = self.store.t.get(mseqof_key(*id))? {
                if let Some(old) = be_u64(&old) {
                    self.batch.remove(mseq_key(old).as_bytes());
                }
            }
            let seq = self.store.db.generate_id()? + 1;
            self.batch
                .insert(mseq_key(seq).as_bytes(), &id.to_be_bytes());
            self.batch
                .insert(mseqof_key(*id).as_bytes(), &seq.to_be_bytes());
            cursor = Some(seq);
        }
        if let Some(c) = cursor {
            self.batch.insert(MSG_CURSOR, &c.to_be_bytes());
        }
        for (k, id) in &self.keys {
            self.batch
                .insert(format!("mkey/{k}").as_bytes(), &id.to_be_bytes());
        }
        self.store.t.apply_batch(self.batch)?;
        self.store.db.flush()?;
        if let Some(c) = cursor {
            // Published only once the whole batch is applied: a reader that sees the cursor
            // sees every change up to it.
            self.store.msg_cursor.fetch_max(c, Ordering::Release);
        }
        self.store
            .outbox_durable
            .fetch_max(self.outbox_max, Ordering::Release);
        Ok(())
    }
}

impl Store {
    /// Opens (or creates) the store; fails clearly when another process holds it.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(500))
            .open()
            .with_context(|| {
                format!(
                    "cannot open the store in {} (is another greenlight running with this data directory?)",
                    dir.display()
                )
            })?;
        let t = db.open_tree("greenlight")?;
        let cursor = t.get(MSG_CURSOR)?.and_then(|v| be_u64(&v)).unwrap_or(0);
        // What the store holds at open is what survived: all of it is durable, and sled's ids
        // only grow, so every entry queued from now on is above this mark until flushed.
        let durable = db.generate_id()?;
        Ok(Store {
            db,
            t,
            msg_cursor: Arc::new(AtomicU64::new(cursor)),
            outbox_durable: Arc::new(AtomicU64::new(durable)),
        })
    }

    pub fn begin(&self) -> WriteSet<'_> {
        WriteSet {
            store: self,
            batch: sled::Batch::default(),
            msgs: BTreeMap::new(),
            keys: BTreeMap::new(),
            idem: Vec::new(),
            runs: BTreeMap::new(),
            new_messages: 0,
            outboxed: 0,
            outbox_max: 0,
        }
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    pub fn next_run(&self) -> Result<u64> {
        Ok(match self.t.get("meta/next_run")? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v.as_ref().try_into().expect("8 bytes")),
            _ => 1,
        })
    }

    pub fn run(&self, id: RunId) -> Result<Option<Run>> {
        match self.t.get(run_key(id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    pub fn active_runs(&self) -> Result<Vec<Run>> {
        let mut out = Vec::new();
        for kv in self.t.scan_prefix("active/") {
            let (k, _) = kv?;
            let id: u64 = std::str::from_utf8(&k[7..])?.parse()?;
            if let Some(r) = self.run(RunId(id))? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub fn envs(&self) -> Result<BTreeMap<EnvName, EnvState>> {
        let mut out = BTreeMap::new();
        for kv in self.t.scan_prefix("env/") {
            let (k, v) = kv?;
            let name = std::str::from_utf8(&k[4..])?.to_string();
            out.insert(EnvName::new(name), serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    /// The newest `limit` runs of an environment, newest first.
    pub fn history(&self, env: &EnvName, limit: usize) -> Result<Vec<Run>> {
        let prefix = format!("hist/{env}/");
        let mut out = Vec::new();
        for kv in self.t.scan_prefix(prefix.as_bytes()).rev() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let id: u64 = std::str::from_utf8(&k[prefix.len()..])?.parse()?;
            if let Some(r) = self.run(RunId(id))? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub fn events(&self, id: RunId) -> Result<Vec<Event>> {
        self.t
            .scan_prefix(format!("ev/{:020}/", id.0).as_bytes())
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect()
    }

    pub fn message(&self, id: u64) -> Result<Option<LocalMessage>> {
        match self.t.get(msg_key(id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    pub fn id_for_key(&self, key: &str) -> Result<Option<u64>> {
        Ok(self
            .t
            .get(format!("mkey/{key}"))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Every local message in order.
    pub fn messages(&self) -> Result<Vec<LocalMessage>> {
        self.t
            .scan_prefix("msg/")
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect()
    }

    /// The local channel's current change cursor (0 before any change was indexed).
    pub fn message_cursor(&self) -> u64 {
        self.msg_cursor.load(Ordering::Acquire)
    }

    /// The messages created or changed (text, reactions) after cursor `after` and up to `upto`
    /// (a value of `message_cursor`), in id order. A change racing with this read may be left
    /// out, but then it is numbered above `upto` and the next read from `upto` returns it.
    pub fn messages_changed(&self, after: u64, upto: u64) -> Result<Vec<LocalMessage>> {
        let mut ids = std::collections::BTreeSet::new();
        if after < upto {
            for kv in self
                .t
                .range(mseq_key(after + 1).into_bytes()..=mseq_key(upto).into_bytes())
            {
                let (_, v) = kv?;
                if let Some(id) = be_u64(&v) {
                    ids.insert(id);
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.message(id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub fn message_count(&self) -> usize {
        self.t.scan_prefix("msg/").count()
    }

    /// The oldest undelivered message of a platform, with its store key.
    pub fn outbox_first(&self, platform: Platform) -> Result<Option<(Vec<u8>, OutboxEntry)>> {
        match self
            .t
            .scan_prefix(format!("outbox/{platform}/").as_bytes())
            .next()
        {
            Some(kv) => {
                let (k, v) = kv?;
                // Entries are in sequence order: if the first is not flushed yet, none is.
                let durable = self.outbox_durable.load(Ordering::Acquire);
                if outbox_seq(&k).is_some_and(|seq| seq > durable) {
                    return Ok(None);
                }
                Ok(Some((k.to_vec(), serde_json::from_slice(&v)?)))
            }
            None => Ok(None),
        }
    }

    pub fn outbox_len(&self, platform: Platform) -> usize {
        self.t
            .scan_prefix(format!("outbox/{platform}/").as_bytes())
            .count()
    }

    /// A message was delivered: drop it from the outbox and remember where it went, in one batch.
    pub fn delivered(
        &self,
        outbox_key: &[u8],
        platform: Platform,
        key: Option<&str>,
        channel: &str,
        id: Option<&str>,
    ) -> Result<()> {
        let mut b = sled::Batch::default();
        b.remove(outbox_key);
        if let (Some(k), Some(id)) = (key, id) {
            b.insert(
                format!("pref/{platform}/{k}").as_bytes(),
                format!("{channel} {id}").as_bytes(),
            );
            b.insert(
                format!("prev/{platform}/{channel}/{id}").as_bytes(),
                k.as_bytes(),
            );
        }
        self.t.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }

    /// Where a keyed message went on a platform: (channel, message id).
    pub fn platform_ref(&self, platform: Platform, key: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .t
            .get(format!("pref/{platform}/{key}").as_bytes())?
            .and_then(|v| {
                let s = String::from_utf8_lossy(&v).to_string();
                s.split_once(' ')
                    .map(|(c, i)| (c.to_string(), i.to_string()))
            }))
    }

    /// The thread channel created under a keyed message (Discord).
    pub fn thread_of(&self, platform: Platform, key: &str) -> Result<Option<String>> {
        Ok(self
            .t
            .get(format!("pthread/{platform}/{key}").as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).to_string()))
    }

    pub fn set_thread(&self, platform: Platform, key: &str, thread: &str) -> Result<()> {
        self.t.insert(
            format!("pthread/{platform}/{key}").as_bytes(),
            thread.as_bytes(),
        )?;
        self.db.flush()?;
        Ok(())
    }

    /// The core's key of a platform message, for reactions.
    pub fn key_of(&self, platform: Platform, channel: &str, id: &str) -> Result<Option<String>> {
        Ok(self
            .t
            .get(format!("prev/{platform}/{channel}/{id}").as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).to_string()))
    }

    /// Records `key` once (atomically); false if it was recorded before.
    pub fn remember_once(&self, ns: &str, key: &str, now: DateTime<Utc>) -> Result<bool> {
        let k = format!("idem/{ns}/{key}");
        let r = self.t.compare_and_swap(
            k.as_bytes(),
            None as Option<&[u8]>,
            Some(now.timestamp().to_be_bytes().as_slice()),
        )?;
        self.db.flush()?;
        Ok(r.is_ok())
    }

    /// Was this platform event id handled already?
    pub fn seen(&self, platform: Platform, id: &str) -> Result<bool> {
        Ok(self
            .t
            .contains_key(format!("idem/{platform}/{id}").as_bytes())?)
    }

    /// Forgets platform event ids older than `before` (redeliveries come within minutes).
    pub fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<usize> {
        let mut b = sled::Batch::default();
        let mut n = 0;
        for kv in self.t.scan_prefix("idem/") {
            let (k, v) = kv?;
            let at = v.as_ref().try_into().map(i64::from_be_bytes).unwrap_or(0);
            if at < before.timestamp() {
                b.remove(k);
                n += 1;
            }
        }
        self.t.apply_batch(b)?;
        Ok(n)
    }

    /// Drops the oldest local messages beyond `keep`.
    pub fn trim_messages(&self, keep: usize) -> Result<usize> {
        let n = self.message_count();
        if n <= keep {
            return Ok(0);
        }
        self.trim_oldest(n - keep)
    }

    /// Drops the `n` oldest local messages, with their keys and change-index entries; how many
    /// it dropped. Reads only those (the loop keeps the count, so it never scans them all).
    pub fn trim_oldest(&self, n: usize) -> Result<usize> {
        let mut batch = sled::Batch::default();
        let mut dropped = 0;
        for kv in self.t.scan_prefix("msg/").take(n) {
            let (k, v) = kv?;
            if let Ok(m) = serde_json::from_slice::<LocalMessage>(&v) {
                if let Some(key) = m.key {
                    batch.remove(format!("mkey/{key}").as_bytes());
                }
            }
            if let Some(id) = std::str::from_utf8(&k[4..])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                if let Some(seq) = self.t.get(mseqof_key(id))?.and_then(|s| be_u64(&s)) {
                    batch.remove(mseq_key(seq).as_bytes());
                }
                batch.remove(mseqof_key(id).as_bytes());
            }
            batch.remove(k);
            dropped += 1;
        }
        self.t.apply_batch(batch)?;
        Ok(dropped)
    }
}

/// What steps with external side effects started (a workflow dispatch, a sync), keyed by
/// `StepCtx::key`: written and flushed before the step acts, so after a crash the step follows
/// what it started instead of starting it again. Its own sled tree beside the loop's, written
/// from the IO tasks (sled is safe to share); values are JSON the step defines.
#[derive(Clone)]
pub struct Journal {
    db: sled::Db,
    t: sled::Tree,
}

impl Journal {
    /// What the step recorded under `key`, if anything (an unreadable record reads as none
    /// of this type: the step decides what that means).
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(match self.t.get(key.as_bytes())? {
            Some(v) => Some(serde_json::from_slice(&v)?),
            None => None,
        })
    }

    /// Records `value` under `key` and waits until it is on disk.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.t.insert(key.as_bytes(), serde_json::to_vec(value)?)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// A journal in a temporary store of its own (driver tests).
    pub fn scratch(dir: &Path) -> Result<Journal> {
        Store::open(dir, 1 << 20)?.journal()
    }
}

impl Store {
    pub fn journal(&self) -> Result<Journal> {
        Ok(Journal {
            db: self.db.clone(),
            t: self.db.open_tree("journal")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::Phase;

    #[test]
    fn messages_keys_and_next_run_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("gl-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir, 1 << 20).unwrap();
            let mut w = s.begin();
            let id = w
                .add_message(LocalMessage {
                    id: String::new(),
                    channel: "deploys".into(),
                    user: "greenlight".into(),
                    text: "hi".into(),
                    thread_id: None,
                    ts: Utc::now(),
                    visible_to: None,
                    reactions: vec![],
                    key: Some("run-1/checklist".into()),
                })
                .unwrap();
            assert_eq!(w.id_for_key("run-1/checklist").unwrap(), Some(id));
            w.put_next_run(7);
            w.commit().unwrap();
        }
        let s = Store::open(&dir, 1 << 20).unwrap();
        assert_eq!(s.next_run().unwrap(), 7);
        let msgs = s.messages().unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            s.id_for_key("run-1/checklist").unwrap(),
            Some(msgs[0].id.parse().unwrap())
        );
        assert!(s.active_runs().unwrap().is_empty());
        assert!(Phase::Succeeded.is_terminal());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn msg(text: &str) -> LocalMessage {
        LocalMessage {
            id: String::new(),
            channel: "deploys".into(),
            user: "bob".into(),
            text: text.into(),
            thread_id: None,
            ts: Utc::now(),
            visible_to: None,
            reactions: vec![],
            key: None,
        }
    }

    #[test]
    fn changes_are_numbered_and_survive_reopen_and_old_messages() {
        let dir = std::env::temp_dir().join(format!("gl-store-seq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, old_id);
        {
            let s = Store::open(&dir, 1 << 20).unwrap();
            assert_eq!(s.message_cursor(), 0);
            // A message as an older greenlight wrote it: no change index.
            old_id = 5_000_000u64;
            let mut m = msg("old");
            m.id = old_id.to_string();
            s.t.insert(msg_key(old_id), serde_json::to_vec(&m).unwrap())
                .unwrap();
            let mut w = s.begin();
            a = w.add_message(msg("a")).unwrap();
            w.commit().unwrap();
            let c1 = s.message_cursor();
            assert!(c1 > 0);
            let changed = s.messages_changed(0, c1).unwrap();
            assert_eq!(changed.len(), 1, "{changed:?}");
            assert_eq!(changed[0].text, "a");
            assert!(s.messages_changed(c1, c1).unwrap().is_empty());
            let mut w = s.begin();
            let b = w.add_message(msg("b")).unwrap();
            let mut m = w.message(a).unwrap().unwrap();
            m.text = "a, edited".into();
            w.update_message(a, m);
            w.commit().unwrap();
            let c2 = s.message_cursor();
            let changed = s.messages_changed(c1, c2).unwrap();
            let ids: Vec<String> = changed.iter().map(|m| m.id.clone()).collect();
            assert_eq!(ids, vec![a.to_string(), b.to_string()]);
            assert_eq!(changed[0].text, "a, edited");
            // The edit moved the message: it is listed once.
            assert_eq!(s.messages_changed(0, c2).unwrap().len(), 2);
            assert_eq!(s.messages().unwrap().len(), 3);
        }
        let s = Store::open(&dir, 1 << 20).unwrap();
        let c = s.message_cursor();
        assert!(c > 0, "the cursor is persisted");
        assert!(s.messages_changed(c, c).unwrap().is_empty());
        // Editing an old message indexes it.
        let mut w = s.begin();
        let mut m = w.message(old_id).unwrap().unwrap();
        m.text = "old, edited".into();
        w.update_message(old_id, m);
        w.commit().unwrap();
        let changed = s.messages_changed(c, s.message_cursor()).unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].text, "old, edited");
        assert!(s.message_cursor() > c);
        // Trimming drops the index entries with the messages.
        s.trim_messages(1).unwrap();
        assert_eq!(s.messages_changed(0, s.message_cursor()).unwrap().len(), 1);
        assert_eq!(s.t.scan_prefix("mseq/").count(), 1);
        assert_eq!(s.t.scan_prefix("mseqof/").count(), 1);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run as today's code stores it (the first run of the stored-records fixture).
    fn fixture_run() -> Run {
        let text = include_str!("../tests/fixtures/stored_records.tsv");
        let json = text
            .lines()
            .find_map(|l| l.strip_prefix("run\t"))
            .expect("a run in the fixture");
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_batch_answers_reads_with_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let base = fixture_run();
        let env = base.env.clone();
        let mut w = s.begin();
        let mut first = base.clone();
        first.id = RunId(1);
        w.put_run(&first);
        assert!(w.first_time(Platform::Slack, "ev-1", Utc::now()).unwrap());
        w.commit().unwrap();

        let mut w = s.begin();
        // An event id held by the batch is seen before it is written, and after.
        assert!(w.seen(Platform::Slack, "ev-1").unwrap());
        assert!(!w.seen(Platform::Slack, "ev-2").unwrap());
        w.first_time(Platform::Slack, "ev-2", Utc::now()).unwrap();
        assert!(w.seen(Platform::Slack, "ev-2").unwrap());
        assert!(!s.seen(Platform::Slack, "ev-2").unwrap());
        // History merges the written runs with the batch's: newer ones and new states.
        let mut second = base.clone();
        second.id = RunId(2);
        w.put_run(&second);
        let mut first_again = first.clone();
        first_again.version = "v9.9.9".into();
        w.put_run(&first_again);
        let h = w.history(&env, 10).unwrap();
        let got: Vec<(u64, &str)> = h.iter().map(|r| (r.id.0, r.version.as_str())).collect();
        assert_eq!(got, vec![(2, base.version.as_str()), (1, "v9.9.9")]);
        assert_eq!(w.history(&env, 1).unwrap().len(), 1);
        assert_eq!(s.history(&env, 10).unwrap().len(), 1, "nothing written yet");
        w.commit().unwrap();
        assert!(s.seen(Platform::Slack, "ev-2").unwrap());
        assert_eq!(s.history(&env, 10).unwrap().len(), 2);
    }

    #[test]
    fn deliverers_see_an_outbox_entry_only_once_it_is_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let entry = |text: &str| OutboxEntry::new(Platform::Slack, "C1", text);
        // Applied but not flushed (the window between sled's apply_batch and flush): unseen.
        let seq = s.db.generate_id().unwrap();
        let k = format!("outbox/slack/{seq:020}");
        s.t.insert(k.as_bytes(), serde_json::to_vec(&entry("early")).unwrap())
            .unwrap();
        assert_eq!(s.outbox_len(Platform::Slack), 1);
        assert!(s.outbox_first(Platform::Slack).unwrap().is_none());
        // A committed batch (applied, flushed, then published) shows it and everything before.
        let mut ws = s.begin();
        ws.push_outbox(&entry("later")).unwrap();
        ws.commit().unwrap();
        let (_, first) = s.outbox_first(Platform::Slack).unwrap().unwrap();
        assert_eq!(first.text, "early");
        // After a restart everything stored is durable.
        drop(s);
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            s.outbox_first(Platform::Slack).unwrap().unwrap().1.text,
            "early"
        );
    }
}
