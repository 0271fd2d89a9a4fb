//! Self-tests without greenlight: REST answers parsed into serenity's model types; every
//! gateway frame parsed as serenity's `GatewayEvent` through a minimal raw WebSocket
//! client; and a real serenity `Client` driven end to end (gateway, cache, HTTP).

use crate::fake_discord::*;
use serde_json::{json, Value};
use serenity::all::{
    BotGateway, Channel, ChannelId, ChannelType, ClientBuilder, Command, CommandDataOptionValue,
    CommandInteraction, CommandOptionType, Context, CreateCommand, CreateCommandOption,
    CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage,
    CreateMessage, CreateThread, CurrentApplicationInfo, CurrentUser, DiscordJsonError,
    EditInteractionResponse, EditMessage, Event, EventHandler, Gateway, GatewayEvent,
    GatewayIntents, Guild, GuildChannel, GuildId, HttpBuilder, HttpError, Interaction, Message,
    MessageType, Reaction, ReactionType, Ready, ResolvedValue, ResumedEvent,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);
const ALICE: &str = "300000000000000001";
const BOB: &str = "300000000000000002";
const DEPLOYS: &str = DEFAULT_CHANNELS[0].0;

// ---------------------------------------------------------------- REST helpers

async fn call(
    fake: &FakeDiscord,
    method: &str,
    path: &str,
    auth: bool,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!("{}/api/v10/{path}", fake.api_url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, url);
    if auth {
        req = req.header("authorization", format!("Bot {BOT_TOKEN}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, v)
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> T {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("serenity would not parse {what}: {e}\n{v:#}"))
}

fn discord_error(v: Value) -> DiscordJsonError {
    parse("an error body", v)
}

// ---------------------------------------------------------------- raw WebSocket client

enum Frame {
    Text(String),
    Close(Option<u16>),
    Eof,
}

/// Just enough RFC 6455 client for the self-test: handshake, masked text frames out,
/// unfragmented frames in.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
    last_seq: u64,
}

impl RawWs {
    async fn connect(url: &str) -> RawWs {
        let rest = url.strip_prefix("ws://").expect("ws:// url");
        let slash = rest.find('/').expect("path");
        let (host, path) = rest.split_at(slash);
        let mut stream = TcpStream::connect(host).await.expect("connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("handshake");
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "eof during handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawWs {
            stream,
            buf: buf[head_end + 4..].to_vec(),
            last_seq: 0,
        }
    }

    async fn send_json(&mut self, v: Value) {
        let text = v.to_string();
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("ws write");
    }

    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            return None;
        }
        let payload = b[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Some(match opcode {
            0x1 => Frame::Text(String::from_utf8(payload).expect("utf8 text frame")),
            0x8 => Frame::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            ),
            other => panic!("unexpected ws opcode {other}"),
        })
    }

    async fn recv(&mut self) -> Frame {
        let read = async {
            loop {
                if let Some(f) = self.parse() {
                    return f;
                }
                let mut chunk = [0u8; 16384];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Frame::Eof,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(T, read)
            .await
            .expect("ws frame in time")
    }

    /// The next frame, parsed exactly as serenity's shard does (`GatewayEvent`).
    async fn event(&mut self) -> (Value, GatewayEvent) {
        match self.recv().await {
            Frame::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("frame is JSON");
                let e = serde_json::from_str::<GatewayEvent>(&t)
                    .unwrap_or_else(|e| panic!("serenity would not parse {t}: {e}"));
                if let GatewayEvent::Dispatch(s, _) = &e {
                    self.last_seq = *s;
                }
                (v, e)
            }
            Frame::Close(code) => panic!("unexpected close {code:?}"),
            Frame::Eof => panic!("unexpected eof"),
        }
    }

    async fn dispatch(&mut self) -> (u64, Event) {
        match self.event().await {
            (_, GatewayEvent::Dispatch(s, e)) => (s, e),
            (v, _) => panic!("expected a dispatch, got {v}"),
        }
    }

    async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.recv().await {
                Frame::Close(code) => return code,
                Frame::Eof => return None,
                Frame::Text(_) => {}
            }
        }
    }
}

fn identify(intents: u64) -> Value {
    // What serenity's WsClient::send_identify writes.
    json!({"op": 2, "d": {
        "compress": true,
        "token": format!("Bot {BOT_TOKEN}"),
        "large_threshold": 250,
        "shard": [0, 1],
        "intents": intents,
        "properties": {"browser": "serenity", "device": "serenity", "os": "linux"},
        "presence": {"afk": false, "status": "online", "since": null, "activities": []},
    }})
}

// ---------------------------------------------------------------- REST

#[tokio::test]
async fn fake_discord_rest_answers_parse_as_serenity_models() {
    let fake = FakeDiscord::start().await;

    let (status, _, v) = call(&fake, "GET", "gateway", false, None).await;
    assert_eq!(status, 200);
    assert_eq!(parse::<Gateway>("gateway", v).url, fake.gateway_url());
    let (_, _, v) = call(&fake, "GET", "gateway/bot", true, None).await;
    let bot: BotGateway = parse("gateway/bot", v);
    assert_eq!(
        (bot.shards, bot.session_start_limit.max_concurrency),
        (1, 1)
    );
    let (_, _, v) = call(&fake, "GET", "users/@me", true, None).await;
    let me: CurrentUser = parse("users/@me", v);
    assert_eq!((me.id.to_string().as_str(), me.bot), (BOT_USER_ID, true));
    for path in ["oauth2/applications/@me", "applications/@me"] {
        let (_, _, v) = call(&fake, "GET", path, true, None).await;
        let app: CurrentApplicationInfo = parse(path, v);
        assert_eq!(app.id.to_string(), APPLICATION_ID);
    }
    let (status, _, v) = call(&fake, "GET", "users/@me", false, None).await;
    assert_eq!(status, 401);
    let e = discord_error(v);
    assert_eq!((e.code, e.message.as_str()), (0, "401: Unauthorized"));

    // Commands: exactly what serenity's builders serialize.
    let defs = serde_json::to_value(vec![CreateCommand::new("deploy")
        .description("Deploy an app")
        .add_option(
            CreateCommandOption::new(CommandOptionType::SubCommand, "start", "Start one")
                .add_sub_option(
                    CreateCommandOption::new(CommandOptionType::String, "env", "Where")
                        .required(true),
                )
                .add_sub_option(CreateCommandOption::new(
                    CommandOptionType::Integer,
                    "version",
                    "Which",
                )),
        )])
    .unwrap();
    let path = format!("applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands");
    let (status, _, v) = call(&fake, "PUT", &path, true, Some(defs.clone())).await;
    assert_eq!(status, 200, "{v}");
    let cmds: Vec<Command> = parse("commands", v);
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].name, "deploy");
    assert_eq!(
        cmds[0].guild_id.map(|g| g.to_string()).as_deref(),
        Some(GUILD_ID)
    );
    assert_eq!(cmds[0].options[0].options.len(), 2);
    let (_, _, v) = call(&fake, "PUT", &path, true, Some(defs)).await;
    let again: Vec<Command> = parse("commands", v);
    assert_eq!(again[0].id, cmds[0].id, "same name keeps its id");
    assert_eq!(fake.registered_commands().as_array().unwrap().len(), 1);
    let bad = json!([{"name": "Deploy", "description": "x"}]);
    let (status, _, v) = call(&fake, "PUT", &path, true, Some(bad)).await;
    assert_eq!(status, 400);
    let e = discord_error(v);
    assert_eq!((e.code, e.errors[0].path.as_str()), (50035, "0.name"));
    let bad = json!([{"name": "deploy", "description": "x", "options": [
        {"type": 3, "name": "a", "description": "a"},
        {"type": 3, "name": "b", "description": "b", "required": true}]}]);
    let (_, _, v) = call(&fake, "PUT", &path, true, Some(bad)).await;
    assert_eq!(discord_error(v).errors[0].path, "0.options.1.required");
    let other = format!("applications/{APPLICATION_ID}/guilds/1/commands");
    let (status, _, _) = call(&fake, "PUT", &other, true, Some(json!([]))).await;
    assert_eq!(status, 403);

    // Messages.
    let msgs = format!("channels/{DEPLOYS}/messages");
    let (status, _, v) = call(
        &fake,
        "POST",
        &msgs,
        true,
        Some(json!({"content": "hello"})),
    )
    .await;
    assert_eq!(status, 200);
    let m: Message = parse("message", v);
    assert_eq!(m.content, "hello");
    assert_eq!(m.author.id.to_string(), BOT_USER_ID);
    assert_eq!(m.channel_id.to_string(), DEPLOYS);
    assert_eq!(m.kind, MessageType::Regular);
    let (_, _, v) = call(&fake, "POST", &msgs, true, Some(json!({"content": "two"}))).await;
    let m2: Message = parse("message", v);
    assert!(m2.id > m.id, "snowflakes increase");
    assert!(m2.id.created_at().unix_timestamp() > 1_700_000_000);

    let (status, _, v) = call(
        &fake,
        "POST",
        "channels/1/messages",
        true,
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((status, discord_error(v).code), (404, 10003));
    let (status, _, v) = call(&fake, "POST", &msgs, true, Some(json!({"content": ""}))).await;
    assert_eq!((status, discord_error(v).code), (400, 50006));
    let long = "x".repeat(2001);
    let (status, _, v) = call(&fake, "POST", &msgs, true, Some(json!({"content": long}))).await;
    let e = discord_error(v);
    assert_eq!(
        (status, e.code, e.errors[0].path.as_str()),
        (400, 50035, "content")
    );

    let one = format!("channels/{DEPLOYS}/messages/{}", m.id);
    let (_, _, v) = call(
        &fake,
        "PATCH",
        &one,
        true,
        Some(json!({"content": "hello, edited"})),
    )
    .await;
    let edited: Message = parse("edited message", v);
    assert_eq!(edited.content, "hello, edited");
    assert!(edited.edited_timestamp.is_some());
    assert_eq!(fake.message(&m.id.to_string()).unwrap().edits, 1);
    let (status, _, v) = call(
        &fake,
        "PATCH",
        &format!("channels/{DEPLOYS}/messages/5"),
        true,
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((status, discord_error(v).code), (404, 10008));

    // A reply.
    let (_, _, v) = call(
        &fake,
        "POST",
        &msgs,
        true,
        Some(json!({
        "content": "re", "message_reference": {"message_id": m.id.to_string()}})),
    )
    .await;
    let reply: Message = parse("reply", v);
    assert_eq!(reply.kind, MessageType::InlineReply);
    assert_eq!(reply.referenced_message.unwrap().id, m.id);

    // Threads: same id as the message, once.
    let threads = format!("{one}/threads");
    let (status, _, v) = call(
        &fake,
        "POST",
        &threads,
        true,
        Some(json!({
        "name": "deploy-1", "auto_archive_duration": 1440})),
    )
    .await;
    assert_eq!(status, 201);
    let t: GuildChannel = parse("thread", v);
    assert_eq!(t.kind, ChannelType::PublicThread);
    assert_eq!(t.id.get(), m.id.get());
    assert_eq!(t.parent_id.unwrap().to_string(), DEPLOYS);
    assert_eq!(t.guild_id.to_string(), GUILD_ID);
    assert_eq!(t.name, "deploy-1");
    assert!(!t.thread_metadata.unwrap().archived);
    let (status, _, v) = call(
        &fake,
        "POST",
        &threads,
        true,
        Some(json!({"name": "again"})),
    )
    .await;
    assert_eq!((status, discord_error(v).code), (400, 160004));
    let (status, _, _) = call(&fake, "POST", &threads, true, Some(json!({"name": ""}))).await;
    assert_eq!(status, 400);
    let (_, _, v) = call(&fake, "GET", &format!("channels/{}", t.id), true, None).await;
    assert!(
        matches!(parse::<Channel>("channel", v), Channel::Guild(c) if c.kind == ChannelType::PublicThread)
    );
    let (_, _, v) = call(
        &fake,
        "POST",
        &format!("channels/{}/messages", t.id),
        true,
        Some(json!({"content": "step 1"})),
    )
    .await;
    let in_thread: Message = parse("thread message", v);
    assert_eq!(in_thread.channel_id, t.id);
    assert_eq!(fake.channel(&t.id.to_string()).unwrap().message_count, 1);
    assert_eq!(
        fake.threads(),
        vec![(
            t.id.to_string(),
            DEPLOYS.to_string(),
            m.id.to_string(),
            "deploy-1".to_string()
        )]
    );

    // The bot's reaction, percent-encoded as serenity sends it.
    let (status, _, _) = call(
        &fake,
        "PUT",
        &format!("{one}/reactions/%E2%9C%85/@me"),
        true,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, _, v) = call(&fake, "GET", &one, true, None).await;
    let got: Message = parse("message with reactions and thread", v);
    assert_eq!(got.reactions.len(), 1);
    assert!(got.reactions[0].me);
    assert_eq!(
        got.reactions[0].reaction_type,
        ReactionType::Unicode("✅".into())
    );
    assert_eq!(got.thread.unwrap().id, t.id);
    let (_, _, v) = call(
        &fake,
        "GET",
        &format!("guilds/{GUILD_ID}/channels"),
        true,
        None,
    )
    .await;
    assert_eq!(parse::<Vec<GuildChannel>>("guild channels", v).len(), 4);
}

#[tokio::test]
async fn fake_discord_scripted_faults() {
    let fake = FakeDiscord::start().await;
    let msgs = format!("channels/{DEPLOYS}/messages");
    let body = json!({"content": "hi"});
    fake.fail_next(
        RouteKind::CreateMessage,
        Fault::RateLimited {
            retry_after_secs: 1.5,
        },
    );
    fake.fail_next(RouteKind::CreateMessage, Fault::ServerError);
    let (status, headers, v) = call(&fake, "POST", &msgs, true, Some(body.clone())).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert_eq!(headers["x-ratelimit-reset-after"], "1.500");
    assert!(headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse::<f64>()
        .is_ok());
    assert_eq!(headers["x-ratelimit-scope"], "user");
    assert_eq!(
        v,
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false})
    );
    let (status, _, v) = call(&fake, "POST", &msgs, true, Some(body.clone())).await;
    assert_eq!((status, discord_error(v).code), (500, 0));
    let (status, headers, _) = call(&fake, "POST", &msgs, true, Some(body.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-ratelimit-limit"], "5");
    assert_eq!(fake.messages().len(), 1, "faulted calls post nothing");
    let statuses: Vec<u16> = fake
        .calls_to(RouteKind::CreateMessage)
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, vec![429, 500, 200]);

    fake.fail_next(RouteKind::EditMessage, Fault::Hang);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .patch(format!("{}/api/v10/{msgs}/1", fake.api_url()))
        .header("authorization", format!("Bot {BOT_TOKEN}"))
        .json(&body)
        .send()
        .await
        .expect_err("hangs");
    assert!(err.is_timeout());
    fake.fail_next(
        RouteKind::CreateThread,
        Fault::Error {
            status: 403,
            code: 50001,
            message: "Missing Access".into(),
        },
    );
    let (status, _, v) = call(
        &fake,
        "POST",
        &format!("{msgs}/1/threads"),
        true,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!((status, discord_error(v).code), (403, 50001));
}

// ---------------------------------------------------------------- gateway, raw

#[tokio::test]
async fn fake_discord_gateway_frames_parse_as_serenity_events() {
    let fake = FakeDiscord::start().await;
    fake.set_user_name(ALICE, "alice");
    let all = intents::GUILDS | intents::GUILD_MESSAGES | intents::GUILD_MESSAGE_REACTIONS;
    // Pushed before anyone is connected: delivered after READY.
    let early = fake.slash_command(
        ALICE,
        DEPLOYS,
        "deploy",
        Some("start"),
        &[
            ("env", "staging".into()),
            ("version", 42i64.into()),
            ("force", true.into()),
            ("owner", OptionValue::User(BOB.into())),
            ("ratio", 0.5.into()),
        ],
    );

    let mut ws = RawWs::connect(&format!("{}?v=10", fake.gateway_url())).await;
    assert!(matches!(ws.event().await.1, GatewayEvent::Hello(41250)));
    ws.send_json(identify(all)).await;
    let (s, ev) = ws.dispatch().await;
    let Event::Ready(ready) = ev else {
        panic!("READY first")
    };
    assert_eq!(s, 1);
    let ready = ready.ready;
    assert_eq!(ready.user.id.to_string(), BOT_USER_ID);
    assert_eq!(ready.application.id.to_string(), APPLICATION_ID);
    assert_eq!(ready.guilds[0].id.to_string(), GUILD_ID);
    assert!(ready.guilds[0].unavailable);
    assert_eq!(ready.resume_gateway_url, fake.gateway_url());
    let session_id = ready.session_id.clone();

    let (s, ev) = ws.dispatch().await;
    let Event::GuildCreate(g) = ev else {
        panic!("GUILD_CREATE second")
    };
    assert_eq!(s, 2);
    assert_eq!(g.guild.channels.len(), 4, "every channel parses");
    assert_eq!(g.guild.roles.len(), 2);
    assert!(g.guild.members.keys().any(|u| u.to_string() == BOT_USER_ID));
    let deploys = g
        .guild
        .channels
        .values()
        .find(|c| c.name == "deploys")
        .unwrap();
    assert_eq!(deploys.guild_id.to_string(), GUILD_ID);
    assert_eq!(fake.connection_queries(), vec!["v=10".to_string()]);

    let (s, ev) = ws.dispatch().await;
    assert_eq!(s, 3);
    let Event::InteractionCreate(ic) = ev else {
        panic!("INTERACTION_CREATE")
    };
    let Interaction::Command(cmd) = ic.interaction else {
        panic!("a command interaction")
    };
    assert_eq!(cmd.id.to_string(), early);
    assert_eq!(cmd.data.name, "deploy");
    assert_eq!(cmd.guild_id.unwrap().to_string(), GUILD_ID);
    assert_eq!(cmd.channel_id.to_string(), DEPLOYS);
    assert_eq!(cmd.channel.as_ref().unwrap().kind, ChannelType::Text);
    assert_eq!(cmd.user.id.to_string(), ALICE, "user is filled from member");
    assert_eq!(cmd.member.as_ref().unwrap().user.name, "alice");
    assert_eq!(cmd.attachment_size_limit as u64, ATTACHMENT_SIZE_LIMIT);
    assert_eq!(cmd.application_id.to_string(), APPLICATION_ID);
    let CommandDataOptionValue::SubCommand(opts) = &cmd.data.options[0].value else {
        panic!("subcommand")
    };
    assert_eq!(cmd.data.options[0].name, "start");
    assert_eq!(
        opts[0].value,
        CommandDataOptionValue::String("staging".into())
    );
    assert_eq!(opts[1].value, CommandDataOptionValue::Integer(42));
    assert_eq!(opts[2].value, CommandDataOptionValue::Boolean(true));
    assert_eq!(opts[4].value, CommandDataOptionValue::Number(0.5));
    let resolved = cmd.data.options();
    let ResolvedValue::SubCommand(sub) = &resolved[0].value else {
        panic!("resolved sub")
    };
    assert!(matches!(&sub[3].value, ResolvedValue::User(u, Some(_)) if u.id.to_string() == BOB));

    // Heartbeat -> ACK.
    ws.send_json(json!({"op": 1, "d": 3})).await;
    assert!(matches!(ws.event().await.1, GatewayEvent::HeartbeatAck));
    assert_eq!(fake.heartbeats(), 1);

    // Answer the interaction: defer ephemeral, edit, followup; a second callback fails.
    let cb = format!("interactions/{early}/{}/callback", cmd.token);
    let (status, _, _) = call(
        &fake,
        "POST",
        &cb,
        false,
        Some(json!({"type": 5, "data": {"flags": 64}})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, v) = call(
        &fake,
        "POST",
        &cb,
        false,
        Some(json!({"type": 4, "data": {"content": "x"}})),
    )
    .await;
    assert_eq!((status, discord_error(v).code), (400, 40060));
    let hook = format!("webhooks/{APPLICATION_ID}/{}", cmd.token);
    let (_, _, v) = call(
        &fake,
        "PATCH",
        &format!("{hook}/messages/@original"),
        false,
        Some(json!({"content": "deploying"})),
    )
    .await;
    let original: Message = parse("@original", v);
    assert_eq!(original.content, "deploying");
    assert_eq!(original.kind, MessageType::ChatInputCommand);
    assert!(original.interaction_metadata.is_some());
    let (_, _, v) = call(
        &fake,
        "POST",
        &hook,
        false,
        Some(json!({"content": "step 1 ok"})),
    )
    .await;
    let follow: Message = parse("followup", v);
    assert_ne!(follow.id, original.id);
    assert_eq!(
        fake.interaction_responses(),
        vec![(early.clone(), 5, String::new(), true)]
    );
    let orig = fake.original_response(&early).unwrap();
    assert!(orig.ephemeral && !orig.loading());
    assert_eq!((orig.content.as_str(), orig.edits), ("deploying", 1));
    assert_eq!(fake.followups(&early)[0].content, "step 1 ok");
    let (status, _, v) = call(
        &fake,
        "POST",
        &format!("webhooks/{APPLICATION_ID}/nope"),
        false,
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((status, discord_error(v).code), (401, 50027));
    // The non-ephemeral followup comes back as MESSAGE_CREATE.
    let (_, ev) = ws.dispatch().await;
    let Event::MessageCreate(mc) = ev else {
        panic!("MESSAGE_CREATE of the followup")
    };
    assert_eq!(mc.message.id, follow.id);
    assert_eq!(mc.message.guild_id.unwrap().to_string(), GUILD_ID);

    // A bot message, a thread on it, and its echoes.
    let (_, _, v) = call(
        &fake,
        "POST",
        &format!("channels/{DEPLOYS}/messages"),
        true,
        Some(json!({"content": "Deploy v2"})),
    )
    .await;
    let posted: Message = parse("message", v);
    let (_, ev) = ws.dispatch().await;
    assert!(
        matches!(ev, Event::MessageCreate(m) if m.message.id == posted.id && m.message.member.is_some())
    );
    call(
        &fake,
        "POST",
        &format!("channels/{DEPLOYS}/messages/{}/threads", posted.id),
        true,
        Some(json!({"name": "v2"})),
    )
    .await;
    let (_, ev) = ws.dispatch().await;
    let Event::ThreadCreate(tc) = ev else {
        panic!("THREAD_CREATE")
    };
    assert_eq!(
        (tc.thread.id.get(), tc.thread.kind),
        (posted.id.get(), ChannelType::PublicThread)
    );

    // Reactions.
    let msg_id = posted.id.to_string();
    fake.reaction(ALICE, DEPLOYS, &msg_id, "✅", true);
    let (seq, ev) = ws.dispatch().await;
    let Event::ReactionAdd(add) = ev else {
        panic!("MESSAGE_REACTION_ADD")
    };
    let r = add.reaction;
    assert_eq!(r.user_id.unwrap().to_string(), ALICE);
    assert_eq!(r.message_id, posted.id);
    assert_eq!(r.emoji, ReactionType::Unicode("✅".into()));
    assert_eq!(r.member.as_ref().unwrap().user.id.to_string(), ALICE);
    assert_eq!(r.member.unwrap().guild_id.to_string(), GUILD_ID);
    assert_eq!(r.message_author_id.unwrap().to_string(), BOT_USER_ID);
    assert!(!r.burst);
    // The same frame again, same sequence number.
    assert_eq!(fake.duplicate_last(), seq);
    let (seq2, ev) = ws.dispatch().await;
    assert_eq!(seq2, seq);
    assert!(matches!(ev, Event::ReactionAdd(a) if a.reaction.message_id == posted.id));
    fake.reaction(ALICE, DEPLOYS, &msg_id, "✅", false);
    let (_, ev) = ws.dispatch().await;
    let Event::ReactionRemove(rm) = ev else {
        panic!("MESSAGE_REACTION_REMOVE")
    };
    assert_eq!(rm.reaction.user_id.unwrap().to_string(), ALICE);
    assert!(rm.reaction.member.is_none());
    assert!(!fake.message(&msg_id).unwrap().has_reaction(ALICE, "✅"));

    // RECONNECT, then RESUME on a new connection: missed dispatches replay, then RESUMED.
    let seen = ws.last_seq;
    fake.reconnect();
    assert!(matches!(ws.event().await.1, GatewayEvent::Reconnect));
    fake.reaction(BOB, DEPLOYS, &msg_id, "🚀", true);
    let mut ws2 = RawWs::connect(&format!("{}?v=10", fake.gateway_url())).await;
    ws2.send_json(json!({"op": 6, "d": {
        "session_id": session_id, "token": format!("Bot {BOT_TOKEN}"), "seq": seen}}))
        .await;
    assert!(matches!(ws2.event().await.1, GatewayEvent::Hello(_)));
    let (s, ev) = ws2.dispatch().await;
    assert_eq!(s, seen + 1);
    assert!(
        matches!(ev, Event::ReactionAdd(a) if a.reaction.emoji == ReactionType::Unicode("🚀".into()))
    );
    let (s, ev) = ws2.dispatch().await;
    assert_eq!(s, seen + 2);
    assert!(matches!(ev, Event::Resumed(_)));
    assert_eq!(
        ws.closed().await,
        Some(1000),
        "the old connection is closed"
    );
    fake.wait_connected(2, T).await;

    // RESUME of an unknown session: op 9, not resumable.
    let mut ws3 = RawWs::connect(&format!("{}?v=10", fake.gateway_url())).await;
    ws3.send_json(json!({"op": 6, "d": {
        "session_id": "nope", "token": format!("Bot {BOT_TOKEN}"), "seq": 1}}))
        .await;
    assert!(matches!(ws3.event().await.1, GatewayEvent::Hello(_)));
    assert!(matches!(
        ws3.event().await.1,
        GatewayEvent::InvalidateSession(false)
    ));
    // IDENTIFY with a wrong token: close 4004.
    let mut ws4 = RawWs::connect(&format!("{}?v=10", fake.gateway_url())).await;
    assert!(matches!(ws4.event().await.1, GatewayEvent::Hello(_)));
    let mut bad = identify(all);
    bad["d"]["token"] = json!("Bot wrong");
    ws4.send_json(bad).await;
    assert_eq!(ws4.closed().await, Some(4004));

    assert_eq!(fake.connections(), 4);
    assert_eq!((fake.identifies(), fake.resumes()), (1, 2));
    assert_eq!(fake.intents(), Some(all));
    assert_eq!(fake.identify_payloads()[0]["token"], "<redacted>");
    // ws2 still holds the session.
    fake.slash_command(ALICE, DEPLOYS, "deploy", None, &[]);
    assert!(matches!(
        ws2.dispatch().await.1,
        Event::InteractionCreate(_)
    ));
}

#[tokio::test]
async fn fake_discord_intents_deadline_and_reidentify() {
    let fake = FakeDiscord::start().await;
    let mut ws = RawWs::connect(&format!("{}?v=10", fake.gateway_url())).await;
    ws.event().await;
    ws.send_json(identify(intents::GUILDS)).await;
    assert!(matches!(ws.dispatch().await.1, Event::Ready(_)));
    assert!(matches!(ws.dispatch().await.1, Event::GuildCreate(_)));
    // Without GUILD_MESSAGE_REACTIONS Discord sends no reactions; interactions still come.
    fake.reaction(ALICE, DEPLOYS, "1", "✅", true);
    fake.set_interaction_deadline(Duration::ZERO);
    let late = fake.slash_command(ALICE, DEPLOYS, "status", None, &[]);
    let (_, ev) = ws.dispatch().await;
    let Event::InteractionCreate(ic) = ev else {
        panic!("the interaction, not the reaction")
    };
    assert_eq!(
        fake.dropped_by_intents(),
        vec!["MESSAGE_REACTION_ADD".to_string()]
    );
    // Too late: Unknown interaction.
    let token = ic.interaction.token().to_string();
    fake.wait_until("the interaction written", T, |f| {
        f.interaction(&late).is_some_and(|i| i.sent_at.is_some())
    })
    .await;
    let cb = format!("interactions/{late}/{token}/callback");
    let (status, _, v) = call(
        &fake,
        "POST",
        &cb,
        false,
        Some(json!({"type": 4, "data": {"content": "ok"}})),
    )
    .await;
    assert_eq!((status, discord_error(v).code), (404, 10062));
    assert!(fake.interaction_responses().is_empty());
    assert_eq!(fake.interaction_callbacks()[0].status, 404);

    // A network drop, then a fresh IDENTIFY: the new session starts at s=1 again, and a
    // dispatch pushed while nobody was connected is delivered after READY.
    fake.drop_connections();
    assert_eq!(ws.closed().await, None);
    fake.wait_until("no live connection", T, |f| f.live_connections() == 0)
        .await;
    fake.set_interaction_deadline(DEFAULT_INTERACTION_DEADLINE);
    let queued = fake.slash_command(BOB, DEPLOYS, "status", None, &[]);
    let mut ws2 = RawWs::connect(&format!("{}?v=10", fake.gateway_url())).await;
    ws2.event().await;
    ws2.send_json(identify(intents::GUILDS)).await;
    assert!(matches!(ws2.dispatch().await, (1, Event::Ready(_))));
    assert!(matches!(ws2.dispatch().await, (2, Event::GuildCreate(_))));
    let (s, ev) = ws2.dispatch().await;
    assert_eq!(s, 3);
    assert!(matches!(ev, Event::InteractionCreate(i) if i.interaction.id().to_string() == queued));
    assert_eq!(fake.identifies(), 2);

    // Privileged intents left disabled in the portal: 4014.
    fake.deny_privileged_intents(true);
    let mut ws3 = RawWs::connect(&format!("{}?v=10", fake.gateway_url())).await;
    ws3.event().await;
    ws3.send_json(identify(intents::GUILDS | intents::MESSAGE_CONTENT))
        .await;
    assert_eq!(ws3.closed().await, Some(4014));
}

// ---------------------------------------------------------------- serenity end to end

enum Seen {
    Ready(Context, Box<Ready>),
    Guild(Box<Guild>),
    Command(Box<CommandInteraction>),
    ReactionAdd(Box<Reaction>),
    ReactionRemove(Box<Reaction>),
    Resumed,
}

struct Handler(mpsc::UnboundedSender<Seen>);

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let _ = self.0.send(Seen::Ready(ctx, Box::new(ready)));
    }
    async fn guild_create(&self, _: Context, guild: Guild, _: Option<bool>) {
        let _ = self.0.send(Seen::Guild(Box::new(guild)));
    }
    async fn interaction_create(&self, _: Context, interaction: Interaction) {
        if let Interaction::Command(c) = interaction {
            let _ = self.0.send(Seen::Command(Box::new(c)));
        }
    }
    async fn reaction_add(&self, _: Context, r: Reaction) {
        let _ = self.0.send(Seen::ReactionAdd(Box::new(r)));
    }
    async fn reaction_remove(&self, _: Context, r: Reaction) {
        let _ = self.0.send(Seen::ReactionRemove(Box::new(r)));
    }
    async fn resume(&self, _: Context, _: ResumedEvent) {
        let _ = self.0.send(Seen::Resumed);
    }
}

async fn next<T>(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    what: &str,
    mut f: impl FnMut(Seen) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(seen)) => {
                if let Some(v) = f(seen) {
                    return v;
                }
            }
            Ok(None) => panic!("handler gone while waiting for {what}"),
            Err(_) => panic!("serenity delivered no {what} within {T:?}"),
        }
    }
}

#[tokio::test]
async fn fake_discord_drives_a_real_serenity_client() {
    let fake = FakeDiscord::start().await;
    fake.set_user_name(ALICE, "alice");
    let http = HttpBuilder::new(BOT_TOKEN)
        .proxy(fake.api_url())
        .ratelimiter_disabled(true)
        .build();
    let wanted = GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGE_REACTIONS;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut client = ClientBuilder::new_with_http(http, wanted)
        .event_handler(Handler(tx))
        .await
        .expect("serenity client");
    assert_eq!(
        fake.calls_to(RouteKind::Gateway).len(),
        1,
        "gateway URL asked through the proxy"
    );
    let manager = client.shard_manager.clone();
    let runner = tokio::spawn(async move {
        let _ = client.start().await;
    });

    let (ctx, ready) = next(&mut rx, "ready", |s| match s {
        Seen::Ready(c, r) => Some((c, r)),
        _ => None,
    })
    .await;
    assert_eq!(ready.user.id.to_string(), BOT_USER_ID);
    fake.wait_connected(1, T).await;
    assert_eq!(fake.intents(), Some(wanted.bits()));
    let guild = next(&mut rx, "guild_create", |s| match s {
        Seen::Guild(g) => Some(g),
        _ => None,
    })
    .await;
    assert_eq!(guild.channels.len(), 4);
    let http = ctx.http.clone();
    assert_eq!(
        http.application_id().unwrap().to_string(),
        APPLICATION_ID,
        "from READY"
    );

    // Commands through serenity's builders.
    let cmds = GuildId::new(GUILD_ID.parse().unwrap())
        .set_commands(
            &http,
            vec![CreateCommand::new("deploy")
                .description("Deploy")
                .add_option(
                    CreateCommandOption::new(CommandOptionType::String, "env", "Where")
                        .required(true),
                )],
        )
        .await
        .expect("set_commands");
    assert_eq!(cmds[0].name, "deploy");

    // A slash command: defer ephemeral, edit, followup; a second ack is refused.
    let iid = fake.slash_command(ALICE, DEPLOYS, "deploy", None, &[("env", "staging".into())]);
    let cmd = next(&mut rx, "interaction_create", |s| match s {
        Seen::Command(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(cmd.id.to_string(), iid);
    assert_eq!(cmd.data.id, cmds[0].id, "the registered command's id");
    assert_eq!(cmd.user.name, "alice");
    cmd.defer_ephemeral(&http).await.expect("defer");
    let edited = cmd
        .edit_response(
            &http,
            EditInteractionResponse::new().content("deploying staging"),
        )
        .await
        .expect("edit_response");
    assert_eq!(edited.content, "deploying staging");
    cmd.create_followup(
        &http,
        CreateInteractionResponseFollowup::new().content("step 1 ok"),
    )
    .await
    .expect("followup");
    let err = cmd.defer(&http).await.expect_err("already acknowledged");
    let serenity::Error::Http(HttpError::UnsuccessfulRequest(resp)) = err else {
        panic!("{err:?}")
    };
    assert_eq!((resp.status_code.as_u16(), resp.error.code), (400, 40060));
    assert_eq!(
        fake.interaction_responses(),
        vec![(iid.clone(), 5, String::new(), true)]
    );
    let orig = fake.original_response(&iid).unwrap();
    assert_eq!(
        (orig.content.as_str(), orig.ephemeral),
        ("deploying staging", true)
    );
    assert_eq!(fake.followups(&iid).len(), 1);

    // Messages (with the cache's permission check), a thread, edits, the bot's reaction.
    let msg = ChannelId::new(DEPLOYS.parse().unwrap())
        .send_message(&ctx, CreateMessage::new().content("Deploy v2 to staging"))
        .await
        .expect("send_message passes the cache permission check");
    let thread = ChannelId::new(DEPLOYS.parse().unwrap())
        .create_thread_from_message(&http, msg.id, CreateThread::new("deploy v2"))
        .await
        .expect("create_thread_from_message");
    assert_eq!(
        (thread.id.get(), thread.kind),
        (msg.id.get(), ChannelType::PublicThread)
    );
    thread
        .id
        .send_message(&http, CreateMessage::new().content("step 1: ok"))
        .await
        .expect("post in thread");
    ChannelId::new(DEPLOYS.parse().unwrap())
        .edit_message(&http, msg.id, EditMessage::new().content("Deploy v2: done"))
        .await
        .expect("edit_message");
    msg.react(&http, '✅').await.expect("react");
    let own = next(&mut rx, "the bot's own reaction", |s| match s {
        Seen::ReactionAdd(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(own.user_id.unwrap().to_string(), BOT_USER_ID);
    let stored = fake.message(&msg.id.to_string()).unwrap();
    assert_eq!(
        (stored.content.as_str(), stored.edits),
        ("Deploy v2: done", 1)
    );
    assert_eq!(fake.channel_messages(&thread.id.to_string()).len(), 1);

    // A user's reaction, the same dispatch again (serenity passes it on), and a removal.
    fake.reaction(ALICE, DEPLOYS, &msg.id.to_string(), "✅", true);
    for round in ["reaction", "duplicated reaction"] {
        let r = next(&mut rx, round, |s| match s {
            Seen::ReactionAdd(r) if r.user_id.is_some_and(|u| u.to_string() == ALICE) => Some(r),
            _ => None,
        })
        .await;
        assert_eq!(r.emoji, ReactionType::Unicode("✅".into()));
        assert_eq!(r.message_id, msg.id);
        if round == "reaction" {
            fake.duplicate_last();
        }
    }
    fake.reaction(ALICE, DEPLOYS, &msg.id.to_string(), "✅", false);
    next(&mut rx, "reaction_remove", |s| match s {
        Seen::ReactionRemove(r) => Some(r),
        _ => None,
    })
    .await;

    // RECONNECT: serenity resumes on a new connection; events flow again.
    fake.reconnect();
    next(&mut rx, "resume", |s| {
        matches!(s, Seen::Resumed).then_some(())
    })
    .await;
    fake.wait_connected(2, T).await;
    assert_eq!((fake.identifies(), fake.resumes()), (1, 1));
    let iid2 = fake.slash_command(ALICE, DEPLOYS, "deploy", None, &[("env", "prod".into())]);
    let cmd2 = next(&mut rx, "interaction after resume", |s| match s {
        Seen::Command(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(cmd2.id.to_string(), iid2);
    cmd2.create_response(
        &http,
        CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new().content("queued prod"),
        ),
    )
    .await
    .expect("create_response");
    assert_eq!(
        fake.interaction_responses()[1],
        (iid2.clone(), 4, "queued prod".to_string(), false)
    );
    assert!(!fake.original_response(&iid2).unwrap().ephemeral);

    // With the rate limiter off, a 429 surfaces as an error.
    fake.fail_next(
        RouteKind::CreateMessage,
        Fault::RateLimited {
            retry_after_secs: 1.0,
        },
    );
    let err = ChannelId::new(DEPLOYS.parse().unwrap())
        .send_message(&http, CreateMessage::new().content("x"))
        .await
        .expect_err("429");
    let serenity::Error::Http(HttpError::UnsuccessfulRequest(resp)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(resp.status_code.as_u16(), 429);

    manager.shutdown_all().await;
    runner.abort();
}
