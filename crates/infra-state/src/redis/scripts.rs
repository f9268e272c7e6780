//! The Lua scripts of the Redis backend.

/// Float increments in double precision, written as `%.17g` (plus `.0` when integral) so
/// every backend stores the same text; the TTL is kept.
pub(super) const INCREMENT_FLOAT: &str = r"
local current = 0
local text = redis.call('GET', KEYS[1])
if text then
  local ok, value = pcall(cjson.decode, text)
  if not ok or type(value) ~= 'number' then return redis.error_reply('NOTNUMBER') end
  current = value
end
local sum = current + tonumber(ARGV[1])
if sum ~= sum or sum == math.huge or sum == -math.huge then return redis.error_reply('OVERFLOW') end
local out = string.format('%.17g', sum)
if not string.find(out, '[%.e]') then out = out .. '.0' end
redis.call('SET', KEYS[1], out, 'KEEPTTL')
return out
";

/// Compare-and-swap. ARGV: mode (absent|value|version), expected, new value, ttl in ms or ''.
/// Returns {1, new version} or {0} (missing) or {0, current value, current version}.
pub(super) const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
local ok
if ARGV[1] == 'absent' then ok = (current == false)
elseif ARGV[1] == 'value' then ok = (current ~= false and current == ARGV[2])
else ok = (current ~= false and redis.sha1hex(current) == ARGV[2]) end
if ok then
  if ARGV[4] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) else redis.call('SET', KEYS[1], ARGV[3]) end
  return {1, redis.sha1hex(ARGV[3])}
end
if current == false then return {0} end
return {0, current, redis.sha1hex(current)}
";

/// Compare-and-delete. ARGV: mode (value|version), expected. Returns 1 if deleted, else 0.
pub(super) const COMPARE_AND_DELETE: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok
if ARGV[1] == 'value' then ok = (current == ARGV[2]) else ok = (redis.sha1hex(current) == ARGV[2]) end
if ok then return redis.call('DEL', KEYS[1]) end
return 0
";
