/**
 * The Lua scripts of the Redis collections backend: every step that must be
 * atomic on the server (a versioned write, a queue's close, a barrier's
 * arrival, a lock's grant and release, forgetting a lost holder) runs as one
 * script, so that no other client's command falls between its reads and its
 * writes.
 *
 * Key layout under the backend's prefix `P` (each kind has its own tag, the
 * collection's name last, so two kinds never share a key):
 *
 * | key | type | what |
 * | --- | --- | --- |
 * | `P d:<name>` | hash | a dict: field → encoded value |
 * | `P dv:<name>` | hash | a dict's versions: field → writes so far |
 * | `P s:<name>` | set | a set: encoded members |
 * | `P c:<name>` | string | a counter (`INCRBY`) |
 * | `P q:<name>` | list | a queue; after `close` its last item is the empty string (the end marker: encoded values are never empty) |
 * | `P qc:<name>` | string | present once the queue is closed |
 * | `P qi:<id>` | list | the item a blocked `get` took (`BLMOVE`), until it is handed over |
 * | `P b:<name>` | hash | a barrier's round: `parties`, arrival `seq` |
 * | `P ba:<name>` | sorted set | a barrier's arrivals in this round, by arrival order |
 * | `P bw:<id>` | list | the index one arrival replies, pushed when its round completes |
 * | `P l:<name>` | string | a lock: its holder's token (`SET NX PX`) |
 * | `P lw:<name>` | list | a lock's wake-up: pushed on release |
 * | `P h:<holder>` | hash | what a holder may leave behind: `b<id>` → barrier name, `l<name>` → token, `q<id>` → queue name |
 *
 * Scripts name keys built from the prefix at run time (the holder's hash
 * lists them), so this backend serves a single Redis or Valkey server (or a
 * primary with replicas), not Redis Cluster.
 *
 * @module
 */

/** A dict's write: `KEYS` dict, versions; `ARGV` field, value. */
export const DICT_SET = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1`;

/** A dict's delete: `KEYS` dict, versions; `ARGV` field. Replies 1 when the key was there. */
export const DICT_DELETE = `
local n = redis.call('HDEL', KEYS[1], ARGV[1])
if n == 1 then redis.call('HINCRBY', KEYS[2], ARGV[1], 1) end
return n`;

/** A dict's value with its version: `KEYS` dict, versions; `ARGV` field. Replies `{present, value, version}`. */
export const DICT_GET_VERSIONED = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
local ver = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
if v then return {1, v, ver} end
return {0, '', ver}`;

/**
 * A dict's compare-and-set: `KEYS` dict, versions; `ARGV` field, expected
 * version, `1` to write / `0` to delete, value. Replies 1 when written.
 */
export const DICT_SET_IF_VERSION = `
local ver = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if ver ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1`;

/**
 * A counter's add, refused past `Number.MAX_SAFE_INTEGER` either way:
 * `KEYS` counter; `ARGV` n. Replies the new value as a string.
 */
export const COUNTER_ADD = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
local limit = 9007199254740991
if cur + n > limit or cur + n < -limit then
  return redis.error_reply('RANGE ' .. string.format('%.0f', cur))
end
return tostring(redis.call('INCRBY', KEYS[1], ARGV[1]))`;

/** A queue's put: `KEYS` queue, closed; `ARGV` value. Replies 0 when closed. */
export const QUEUE_PUT = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1`;

/** A queue's close: `KEYS` queue, closed. Pushes the end marker once. */
export const QUEUE_CLOSE = `
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], '1')
  redis.call('RPUSH', KEYS[1], '')
end
return 1`;

/**
 * A queue's non-blocking take: `KEYS` queue, closed. Replies `{2, value}`,
 * `{1}` closed and empty, `{0}` empty.
 */
export const QUEUE_TRY_GET = `
local v = redis.call('LPOP', KEYS[1])
if not v then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {1} end
  return {0}
end
if v == '' then
  redis.call('RPUSH', KEYS[1], '')
  return {1}
end
return {2, v}`;

/** A queue's length, less its end marker: `KEYS` queue, closed. */
export const QUEUE_SIZE = `
local n = redis.call('LLEN', KEYS[1])
if n > 0 and redis.call('EXISTS', KEYS[2]) == 1 and redis.call('LINDEX', KEYS[1], -1) == '' then
  n = n - 1
end
return n`;

/**
 * Hands over what a blocked `get` took (`BLMOVE` into its own list):
 * `KEYS` its list, queue, holder; `ARGV` its id. Replies `{2, value}`,
 * `{1}` closed (the end marker goes back), `{0}` nothing taken.
 */
export const QUEUE_TAKEN = `
local v = redis.call('LPOP', KEYS[1])
redis.call('HDEL', KEYS[3], 'q' .. ARGV[1])
if not v then return {0} end
if v == '' then
  redis.call('RPUSH', KEYS[2], '')
  return {1}
end
return {2, v}`;

/**
 * Puts back what a blocked `get` took when the get ends without handing it
 * over (aborted): `KEYS` its list, queue, holder; `ARGV` its id. The item
 * goes back to the head of the queue, the end marker to its tail.
 */
export const QUEUE_RESTORE = `
local v = redis.call('LPOP', KEYS[1])
redis.call('HDEL', KEYS[3], 'q' .. ARGV[1])
if v then
  if v == '' then redis.call('RPUSH', KEYS[2], v) else redis.call('LPUSH', KEYS[2], v) end
end
return 1`;

/**
 * A barrier's arrival: `KEYS` round, arrivals, holder; `ARGV` parties, id,
 * wake-key prefix, wake expiry (ms), name. When the arrival completes the
 * round, every arrival's wake list gets its index and the round resets.
 * Replies the arrivals present, or an error `PARTIES <n>` when the round
 * waits for another number of parties.
 */
export const BARRIER_ARRIVE = `
local want = tonumber(ARGV[1])
local p = tonumber(redis.call('HGET', KEYS[1], 'parties') or '0')
if p ~= 0 and p ~= want and redis.call('ZCARD', KEYS[2]) > 0 then
  return redis.error_reply('PARTIES ' .. p)
end
redis.call('HSET', KEYS[1], 'parties', want)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], seq, ARGV[2])
redis.call('HSET', KEYS[3], 'b' .. ARGV[2], ARGV[5])
local n = redis.call('ZCARD', KEYS[2])
if n >= want then
  local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
  for i, id in ipairs(ids) do
    local w = ARGV[3] .. id
    redis.call('RPUSH', w, i - 1)
    redis.call('PEXPIRE', w, ARGV[4])
  end
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[1], 'parties')
end
return n`;

/**
 * Ends an arrival: `KEYS` round, arrivals, holder, its wake list; `ARGV` id.
 * Withdraws it while its round is incomplete (replies -1); once the round
 * completed, replies the arrival's index.
 */
export const BARRIER_LEAVE = `
redis.call('HDEL', KEYS[3], 'b' .. ARGV[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('HDEL', KEYS[1], 'parties') end
  return -1
end
local v = redis.call('LPOP', KEYS[4])
redis.call('DEL', KEYS[4])
if v then return tonumber(v) end
return -1`;

/**
 * A lock's grant: `KEYS` lock, holder; `ARGV` token, lease (ms, or empty),
 * name. Replies 1 when granted.
 */
export const LOCK_ACQUIRE = `
local ok
if ARGV[2] ~= '' then
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
else
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not ok then return 0 end
redis.call('HSET', KEYS[2], 'l' .. ARGV[3], ARGV[1])
return 1`;

/**
 * A lock's release by token: `KEYS` lock, wake list, holder; `ARGV` token,
 * name. Replies 1 when the token still held the lock.
 */
export const LOCK_RELEASE = `
if redis.call('HGET', KEYS[3], 'l' .. ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[3], 'l' .. ARGV[2])
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], -1, -1)
return 1`;

/**
 * Forgets a holder: `KEYS` its hash; `ARGV` the prefix. Releases the locks
 * it holds (by token), withdraws its barrier arrivals and puts back what its
 * blocked gets took. Replies how many things it let go.
 */
export const FORGET = `
local P = ARGV[1]
local entries = redis.call('HGETALL', KEYS[1])
local done = 0
for i = 1, #entries, 2 do
  local field, value = entries[i], entries[i + 1]
  local tag, rest = string.sub(field, 1, 1), string.sub(field, 2)
  if tag == 'l' then
    local lock = P .. 'l:' .. rest
    if redis.call('GET', lock) == value then
      redis.call('DEL', lock)
      redis.call('RPUSH', P .. 'lw:' .. rest, '1')
      redis.call('LTRIM', P .. 'lw:' .. rest, -1, -1)
      done = done + 1
    end
  elseif tag == 'b' then
    if redis.call('ZREM', P .. 'ba:' .. value, rest) == 1 then
      if redis.call('ZCARD', P .. 'ba:' .. value) == 0 then
        redis.call('HDEL', P .. 'b:' .. value, 'parties')
      end
      done = done + 1
    end
    redis.call('DEL', P .. 'bw:' .. rest)
  elseif tag == 'q' then
    local v = redis.call('LPOP', P .. 'qi:' .. rest)
    if v then
      if v == '' then redis.call('RPUSH', P .. 'q:' .. value, v) else redis.call('LPUSH', P .. 'q:' .. value, v) end
      done = done + 1
    end
  end
end
redis.call('DEL', KEYS[1])
return done`;
