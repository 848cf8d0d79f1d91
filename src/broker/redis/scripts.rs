//! The Lua scripts the cluster broker runs in Redis, each one atomic.
//!
//! A room's keys share a hash tag (`{prefix}:{room}:…`), so every script
//! touches one slot (ready for Redis Cluster):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `…:m` | hash | `e`: the stream's epoch, `o`: its last offset |
//! | `…:s` | stream | kept messages; entry id `<offset>-1`, field `d`: the body |
//! | `…:p` | hash | presence: `<node>:<member key>` → the member as that node has it |
//! | `…:x` | sorted set | when each presence field expires (ms), unless refreshed |
//! | `…:n` | hash | `<member key>` → on how many nodes it is present |
//!
//! A member key is `u<user id>`, or `c<connection id>` for a connection
//! without a user. `…:c` is the room's channel (not a key).

use redis::Script;

/// Next offset, keep the body (size cap), refresh the expiry, publish.
/// KEYS: meta, stream. ARGV: channel, body, history size, ttl ms, epoch for
/// a new stream. Returns {offset, epoch}.
pub(super) const PUBLISH: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local size = tonumber(ARGV[3])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-1', 'd', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[1], 'p' .. epoch .. '\n' .. offset .. '\n' .. ARGV[2])
return {offset, epoch}
";

/// Where a room's stream is (created if it has none) and, for a position
/// in its epoch and behind it, everything kept after it.
/// KEYS: meta, stream. ARGV: epoch for a new stream, ttl ms, the
/// position's epoch ('' for none), its offset.
/// Returns {epoch, offset[, entries]}.
pub(super) const RECOVER: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'o'))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[3] == '' or ARGV[3] ~= epoch then
  return {epoch, offset}
end
local since = tonumber(ARGV[4])
if since >= offset then
  return {epoch, offset}
end
return {epoch, offset, redis.call('XRANGE', KEYS[2], tostring(since + 1), '+')}
";

/// A room's latest kept messages, newest first; nil when it has no stream.
/// KEYS: meta, stream. ARGV: first offset wanted ('' for any), how many.
pub(super) const HISTORY: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  return false
end
if tonumber(ARGV[2]) == 0 then
  return {epoch, {}}
end
local from = ARGV[1]
if from == '' then
  from = '-'
end
return {epoch, redis.call('XREVRANGE', KEYS[2], '+', from, 'COUNT', ARGV[2])}
";

/// Remove presence fields whose time is up (their node stopped refreshing
/// them: it died or lost Redis), telling the room when a member is gone
/// from every node. Shared by the scripts below (not a script itself).
/// KEYS: presence, expiries, counts. ARGV[1]: now (ms), ARGV[2]: the
/// channel, ARGV[3]: '1' to announce leaves.
const SWEEP: &str = r"
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, f in ipairs(dead) do
  local v = redis.call('HGET', KEYS[1], f)
  redis.call('HDEL', KEYS[1], f)
  redis.call('ZREM', KEYS[2], f)
  local key = string.sub(f, string.find(f, ':', 1, true) + 1)
  local n = redis.call('HINCRBY', KEYS[3], key, -1)
  if n <= 0 then
    redis.call('HDEL', KEYS[3], key)
    if v and ARGV[3] == '1' then
      redis.call('PUBLISH', ARGV[2], 'l' .. v)
    end
  end
end
";

/// A member is in the room on this node (new, or with a new connection
/// count); the room is told when it is new to every node.
/// KEYS: presence, expiries, counts. ARGV: now, channel, announce ('1'),
/// field, member key, member, expiry (ms), key ttl (ms).
fn join() -> String {
    format!(
        "{SWEEP}
local added = redis.call('HSET', KEYS[1], ARGV[4], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[4])
local n = 0
if added == 1 then
  n = redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
end
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ARGV[8])
end
if n == 1 and ARGV[3] == '1' then
  redis.call('PUBLISH', ARGV[2], 'j' .. ARGV[6])
end
return n
"
    )
}

/// A member is no longer in the room on this node; the room is told when
/// it is gone from every node.
/// KEYS: presence, expiries, counts. ARGV: now, channel, announce ('1'),
/// field, member key, member.
fn leave() -> String {
    format!(
        "{SWEEP}
local removed = redis.call('HDEL', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[4])
if removed == 1 then
  local n = redis.call('HINCRBY', KEYS[3], ARGV[5], -1)
  if n <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[5])
    if ARGV[3] == '1' then
      redis.call('PUBLISH', ARGV[2], 'l' .. ARGV[6])
    end
  end
end
return 0
"
    )
}

/// This node is alive and these are its members of the room: their fields
/// are (re)written and their expiry pushed back — rebuilding them after
/// Redis lost them — and the room's stream is kept while it has members.
/// KEYS: presence, expiries, counts, meta, stream. ARGV: now, channel,
/// announce, expiry (ms), key ttl (ms), stream ttl (ms), then (field,
/// member key, member) for each member.
fn refresh() -> String {
    format!(
        "{SWEEP}
for i = 7, #ARGV, 3 do
  local added = redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[i])
  if added == 1 then
    local n = redis.call('HINCRBY', KEYS[3], ARGV[i + 1], 1)
    if n == 1 and ARGV[3] == '1' then
      redis.call('PUBLISH', ARGV[2], 'j' .. ARGV[i + 2])
    end
  end
end
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ARGV[5])
end
redis.call('PEXPIRE', KEYS[4], ARGV[6])
redis.call('PEXPIRE', KEYS[5], ARGV[6])
return 0
"
    )
}

/// Who is in the room, on every node (expired entries removed first).
/// KEYS: presence, expiries, counts. ARGV: now, channel, announce.
fn presence() -> String {
    format!(
        "{SWEEP}
return redis.call('HVALS', KEYS[1])
"
    )
}

/// The scripts, compiled once per broker.
pub(super) struct Scripts {
    pub(super) publish: Script,
    pub(super) recover: Script,
    pub(super) history: Script,
    pub(super) join: Script,
    pub(super) leave: Script,
    pub(super) refresh: Script,
    pub(super) presence: Script,
}

impl Scripts {
    /// The scripts; `sharded`: for a Redis Cluster, where a room's channel
    /// is a sharded one (`SPUBLISH`, allowed in a script because the
    /// channel has the room's hash tag: the slot of the script's keys).
    pub(super) fn new(sharded: bool) -> Scripts {
        let s = |text: &str| {
            if sharded {
                Script::new(&text.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'"))
            } else {
                Script::new(text)
            }
        };
        Scripts {
            publish: s(PUBLISH),
            recover: s(RECOVER),
            history: s(HISTORY),
            join: s(&join()),
            leave: s(&leave()),
            refresh: s(&refresh()),
            presence: s(&presence()),
        }
    }
}
