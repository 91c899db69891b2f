//! Bots: names that post through the API with a bearer token. A person makes them on the
//! settings page; the token is shown once and only its SHA-256 is kept. A bot's name is a
//! nickname claim that never expires, so no person can take it (and no bot can take a name
//! a person is logged in with).

pub mod destination;
pub mod webhook;
pub mod webhook_jobs;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::clock::now_millis;
use crate::domain::Nickname;
use crate::identity::login_handle;
use crate::security::{hex, same_secret, token_hash};
use crate::store::{self, BotRecord, ClaimRecord, Storage, StoreError, bot_login_id};

/// Every token starts with this, so one pasted somewhere is easy to spot (and grep for).
const TOKEN_PREFIX: &str = "chatbot_";
/// Bots one login may make.
pub const MAX_BOTS_PER_LOGIN: usize = 20;
/// A webhook URL longer than this is refused.
const MAX_URL_CHARS: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("“{0}” is taken: someone is logged in with it, or a bot has it.")]
    NameTaken(String),
    #[error("You can have at most {MAX_BOTS_PER_LOGIN} bots.")]
    TooMany,
    #[error(
        "A webhook URL must be an http:// or https:// address of at most {MAX_URL_CHARS} characters."
    )]
    BadUrl,
    /// The webhook URL leads to the server's own networks, and `--allow-private-webhooks` is off.
    #[error("That webhook URL can't be used: {0}.")]
    PrivateWebhook(destination::DestinationError),
    #[error("there is no such bot")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bot as an API request authenticated it.
#[derive(Debug, Clone)]
pub struct BotIdentity {
    pub id: String,
    pub name: Nickname,
    pub mention_key: String,
    /// The login handle its messages carry (of its claim, `bot:{id}`).
    pub handle: String,
}

impl BotIdentity {
    /// The rate limiter's key: bots and people never share a bucket.
    pub fn rate_key(&self) -> String {
        bot_login_id(&self.id)
    }
}

/// Where a mention of a bot is delivered.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub id: String,
    pub bot: String,
    /// The bot's login handle: whether it may read the room.
    pub handle: String,
    pub url: String,
    pub origin: String,
    /// The HMAC key that signs deliveries: the hex SHA-256 of the bot's token, which the bot
    /// can compute and the server keeps anyway.
    pub signing_key: String,
}

impl WebhookTarget {
    /// Where `bot`'s mentions go, if it has a webhook and a current token (revoking the
    /// token silences the webhook too).
    fn of(bot: &BotRecord) -> Option<WebhookTarget> {
        Some(WebhookTarget {
            id: bot.id.clone(),
            bot: bot.name.clone(),
            handle: bot_handle(&bot.id),
            url: bot.webhook_url.clone()?,
            origin: bot.origin.clone(),
            signing_key: bot.token_hash.clone()?,
        })
    }
}

/// Every bot, in memory (they are few), written through to the store.
pub struct Bots {
    storage: Arc<dyn Storage>,
    /// Read on every API request and by the committer for each mention; written only when a
    /// person changes a bot.
    registry: RwLock<Registry>,
    /// `--allow-private-webhooks`: webhook URLs may lead to non-public addresses.
    allow_private_webhooks: bool,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, BotRecord>,
    /// Mention key to id: the committer asks it for every mention, people's included.
    by_mention: HashMap<String, String>,
}

impl FromIterator<BotRecord> for Registry {
    fn from_iter<T: IntoIterator<Item = BotRecord>>(bots: T) -> Registry {
        let mut registry = Registry::default();
        for bot in bots {
            registry.insert(bot);
        }
        registry
    }
}

impl Registry {
    fn insert(&mut self, bot: BotRecord) {
        self.by_mention
            .insert(mention_key_of(&bot.name), bot.id.clone());
        self.by_id.insert(bot.id.clone(), bot);
    }

    fn remove(&mut self, id: &str) -> Option<BotRecord> {
        let bot = self.by_id.remove(id)?;
        let key = mention_key_of(&bot.name);
        if self.by_mention.get(&key).is_some_and(|found| found == id) {
            self.by_mention.remove(&key);
        }
        Some(bot)
    }
}

impl Bots {
    /// Loads every bot. Blocking: call from `spawn_blocking`.
    pub fn load(
        storage: Arc<dyn Storage>,
        allow_private_webhooks: bool,
    ) -> store::StoreResult<Bots> {
        Ok(Bots {
            registry: RwLock::new(storage.bots()?.into_iter().collect()),
            storage,
            allow_private_webhooks,
        })
    }

    /// Reads every bot again: another instance sharing the database changed one. Blocking.
    /// The store is read under the write lock, so a change made here meanwhile (stored, then
    /// put in memory) is never overwritten by an older read.
    pub fn reload(&self) {
        let mut registry = self.registry.write().expect("bots lock");
        match self.storage.bots() {
            Ok(bots) => *registry = bots.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the bots another instance changed")
            }
        }
    }

    /// The bot a bearer token belongs to, if the token is its current one.
    pub fn authenticate(&self, token: &str) -> Option<BotIdentity> {
        let id = token.strip_prefix(TOKEN_PREFIX)?.split('_').next()?;
        let registry = self.registry.read().expect("bots lock");
        let bot = registry.by_id.get(id)?;
        let stored = bot.token_hash.as_deref()?;
        if !same_secret(token_hash(token).as_bytes(), stored.as_bytes()) {
            return None;
        }
        identity(bot)
    }

    /// The bots `login_id` made, oldest first.
    pub fn owned_by(&self, login_id: &str) -> Vec<BotRecord> {
        let mut bots: Vec<BotRecord> = self
            .registry
            .read()
            .expect("bots lock")
            .by_id
            .values()
            .filter(|bot| bot.owner_login == login_id)
            .cloned()
            .collect();
        bots.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        bots
    }

    /// Every bot, by name: the admins' list.
    pub fn all(&self) -> Vec<BotRecord> {
        let mut bots: Vec<BotRecord> = self
            .registry
            .read()
            .expect("bots lock")
            .by_id
            .values()
            .cloned()
            .collect();
        bots.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        bots
    }

    /// The bot's webhook URL, if it has one.
    pub fn webhook_url(&self, id: &str) -> Option<String> {
        let registry = self.registry.read().expect("bots lock");
        registry
            .by_id
            .get(id)
            .and_then(|bot| bot.webhook_url.clone())
    }

    /// Where a mention with this key goes, if it names a bot with a webhook and a current
    /// token (revoking the token silences the webhook too).
    pub fn webhook_for(&self, mention_key: &str) -> Option<WebhookTarget> {
        let registry = self.registry.read().expect("bots lock");
        WebhookTarget::of(registry.by_id.get(registry.by_mention.get(mention_key)?)?)
    }

    /// Where the bot with this id gets its mentions now, as [`Bots::webhook_for`].
    pub fn webhook_of(&self, id: &str) -> Option<WebhookTarget> {
        let registry = self.registry.read().expect("bots lock");
        WebhookTarget::of(registry.by_id.get(id)?)
    }

    /// Makes a bot named `name` for `owner_login` and returns it with its first token.
    /// The caller holds the login lock, so the name check and the claim are one step.
    pub async fn create(
        &self,
        name: &Nickname,
        owner_login: &str,
        origin: String,
    ) -> Result<(BotRecord, String), BotError> {
        if self.owned_by(owner_login).len() >= MAX_BOTS_PER_LOGIN {
            return Err(BotError::TooMany);
        }
        let id = random_hex::<8>();
        let token = new_token(&id);
        let bot = BotRecord {
            id: id.clone(),
            name: name.as_str().to_owned(),
            owner_login: owner_login.to_owned(),
            token_hash: Some(token_hash(&token)),
            webhook_url: None,
            origin,
            created_at: now_millis(),
        };
        let now = now_millis();
        let claim = ClaimRecord::new(name, bot_login_id(&id));
        let stored = bot.clone();
        let created = store::blocking(&self.storage, move |storage| {
            // Not a name a person has (or had until recently): they would find it taken for good.
            if let Some(existing) = storage.claim(&claim.nickname_key)?
                && existing.keeps_bots_out(now)
            {
                return Ok(false);
            }
            storage.create_bot(&stored, &claim)?;
            Ok(true)
        })
        .await?;
        if !created {
            return Err(BotError::NameTaken(name.as_str().to_owned()));
        }
        self.registry
            .write()
            .expect("bots lock")
            .insert(bot.clone());
        tracing::info!(bot = %bot.name, "bot created");
        Ok((bot, token))
    }

    /// Gives `owner_login`'s bot a new token (the old one stops working) and returns it.
    pub async fn new_token(&self, owner_login: &str, id: &str) -> Result<String, BotError> {
        let token = new_token(id);
        let hash = token_hash(&token);
        self.change(owner_login, id, move |bot| bot.token_hash = Some(hash))
            .await?;
        Ok(token)
    }

    /// Deletes `owner_login`'s bot (any bot, for `None`: an admin): its token stops working,
    /// its webhook gets nothing more, and its name is free again. Its messages stay. The
    /// caller holds the login lock, as claims change only under it.
    pub async fn delete(&self, owner_login: Option<&str>, id: &str) -> Result<BotRecord, BotError> {
        let bot = self.bot(owner_login, id)?;
        let claim_key = Nickname::parse(&bot.name).ok().map(|name| name.key());
        let bot_id = bot.id.clone();
        store::blocking(&self.storage, move |storage| {
            // The claim goes only if it is still this bot's.
            let own_claim = match &claim_key {
                Some(key) => storage
                    .claim(key)?
                    .is_some_and(|claim| claim.bot_id() == Some(bot_id.as_str())),
                None => false,
            };
            let claim_key = claim_key.as_deref().filter(|_| own_claim);
            storage.delete_bot(&bot_id, claim_key)
        })
        .await?;
        self.registry.write().expect("bots lock").remove(id);
        tracing::info!(bot = %bot.name, "bot deleted");
        Ok(bot)
    }

    /// Revokes the bot's token: the bot can't post or read until it gets a new one.
    pub async fn revoke(&self, owner_login: &str, id: &str) -> Result<(), BotError> {
        self.change(owner_login, id, |bot| bot.token_hash = None)
            .await
    }

    /// Sets (or with an empty `url`, removes) the bot's webhook. `origin` is this server's
    /// origin as the caller reached it, for the permalinks the webhook carries.
    pub async fn set_webhook(
        &self,
        owner_login: Option<&str>,
        id: &str,
        url: &str,
        origin: String,
    ) -> Result<(), BotError> {
        let url = parse_webhook_url(url)?;
        if let Some(url) = &url
            && !self.allow_private_webhooks
        {
            let parsed = url::Url::parse(url).map_err(|_| BotError::BadUrl)?;
            destination::check_when_set(&parsed)
                .await
                .map_err(BotError::PrivateWebhook)?;
        }
        let check_owner = owner_login.map(str::to_owned);
        self.change_checked(check_owner.as_deref(), id, move |bot| {
            bot.webhook_url = url;
            bot.origin = origin;
        })
        .await
    }

    /// Bot `id`, if `owner_login` owns it (any bot, for `None`).
    fn bot(&self, owner_login: Option<&str>, id: &str) -> Result<BotRecord, BotError> {
        self.registry
            .read()
            .expect("bots lock")
            .by_id
            .get(id)
            .filter(|bot| owner_login.is_none_or(|owner| bot.owner_login == owner))
            .cloned()
            .ok_or(BotError::NotFound)
    }

    async fn change(
        &self,
        owner_login: &str,
        id: &str,
        edit: impl FnOnce(&mut BotRecord),
    ) -> Result<(), BotError> {
        self.change_checked(Some(owner_login), id, edit).await
    }

    /// Read-modify-write of one bot, written to the store before memory. `owner_login`
    /// `None` is the bot itself acting (through the API).
    async fn change_checked(
        &self,
        owner_login: Option<&str>,
        id: &str,
        edit: impl FnOnce(&mut BotRecord),
    ) -> Result<(), BotError> {
        let mut bot = self.bot(owner_login, id)?;
        edit(&mut bot);
        let stored = bot.clone();
        store::blocking(&self.storage, move |storage| storage.save_bot(&stored)).await?;
        self.registry.write().expect("bots lock").insert(bot);
        Ok(())
    }
}

/// A bot whose stored name no longer parses (a nickname rule changed) can't act.
fn identity(bot: &BotRecord) -> Option<BotIdentity> {
    let name = Nickname::parse(&bot.name).ok()?;
    Some(BotIdentity {
        id: bot.id.clone(),
        mention_key: name.mention_key(),
        handle: bot_handle(&bot.id),
        name,
    })
}

/// The login handle of a bot's messages: its claim's.
fn bot_handle(id: &str) -> String {
    login_handle(&bot_login_id(id))
}

fn mention_key_of(name: &str) -> String {
    Nickname::parse(name)
        .map(|n| n.mention_key())
        .unwrap_or_default()
}

/// `None` for an empty URL (no webhook).
fn parse_webhook_url(url: &str) -> Result<Option<String>, BotError> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| BotError::BadUrl)?;
    if url.chars().count() > MAX_URL_CHARS
        || !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
    {
        return Err(BotError::BadUrl);
    }
    Ok(Some(parsed.to_string()))
}

/// `chatbot_{id}_{64 hex}`: the id finds the bot, the 32 random bytes are the secret.
fn new_token(id: &str) -> String {
    format!("{TOKEN_PREFIX}{id}_{}", random_hex::<32>())
}

fn random_hex<const N: usize>() -> String {
    hex(&rand::random::<[u8; N]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_bot_and_only_its_hash_is_kept() {
        let token = new_token("0123456789abcdef");
        assert!(token.starts_with("chatbot_0123456789abcdef_"));
        assert_eq!(token.len(), "chatbot_".len() + 16 + 1 + 64);
        let hash = token_hash(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token[25..]));
        assert_ne!(hash, token_hash(&new_token("0123456789abcdef")));
    }

    #[test]
    fn webhook_urls_are_http_or_https() {
        assert_eq!(parse_webhook_url(" ").unwrap(), None);
        assert_eq!(
            parse_webhook_url("https://example.com/hook").unwrap(),
            Some("https://example.com/hook".into())
        );
        for bad in [
            "ftp://example.com",
            "javascript:alert(1)",
            "not a url",
            "http://",
        ] {
            assert!(parse_webhook_url(bad).is_err(), "{bad}");
        }
    }
}
