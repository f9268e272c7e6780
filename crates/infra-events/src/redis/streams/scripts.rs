//! The Lua scripts of the durable bus: each is one atomic step over the group's state.

/// Moves entries delivered too often to the dead-letter stream, then claims the other idle ones
/// (`XAUTOCLAIM`). `XPENDING` comes first because only it tells how often an entry was
/// delivered. An entry trimmed from the stream while pending cannot be buried or claimed: it is
/// acknowledged (so it stops being pending) and reported as trimmed, as are the IDs `XAUTOCLAIM`
/// reports deleted (its third reply element, Redis 7+; it drops them from the pending list).
/// KEYS: stream, dead-letter stream. ARGV: group, consumer, min idle ms, max deliveries, count,
/// dead-letter max length. Returns {dead-lettered count, claimed entries, trimmed IDs}.
pub(super) const CLAIM_OR_BURY: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[5])
local dead = 0
local trimmed = {}
for _, p in ipairs(pending) do
  if p[4] >= tonumber(ARGV[4]) then
    local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])[1]
    if entry then
      local fields = entry[2]
      table.insert(fields, 'stream_id'); table.insert(fields, p[1])
      table.insert(fields, 'group'); table.insert(fields, ARGV[1])
      table.insert(fields, 'deliveries'); table.insert(fields, tostring(p[4]))
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
      dead = dead + 1
    else
      table.insert(trimmed, p[1])
    end
    redis.call('XACK', KEYS[1], ARGV[1], p[1])
  end
end
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[5])
for _, id in ipairs(claimed[3] or {}) do
  table.insert(trimmed, id)
end
return {dead, claimed[2], trimmed}
";

/// Removes a consumer from its group unless entries are still pending for it (removing it
/// would drop them from the pending list, so nobody could claim them any more).
/// KEYS: stream. ARGV: group, consumer. Returns 1 if removed, 0 if kept.
pub(super) const REMOVE_IDLE_CONSUMER: &str = r"
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// Reads new entries for a consumer (`XREADGROUP … >`, without blocking), first counting the
/// entries trimmed from the stream after the group's position before the group read them: the
/// group's `entries-read` counter against the stream's `entries-added` and length, both kept
/// by Redis 7. Redis does not account for such a gap when a read crosses it, so the counter is
/// set past the gap here (`XGROUP SETID … ENTRIESREAD`); an unknown counter is set while the
/// group has read everything, when it is exact. Skipped on streams with deleted entries after
/// their first (`XDEL`: the length no longer counts what was trimmed) and on Redis 6.
/// KEYS: stream. ARGV: group, consumer, count.
/// Returns {trimmed unread, entries, group position, first entry, stream's last ID}.
pub(super) const READ_NEW: &str = r"
local function field(reply, name)
  for i = 1, #reply, 2 do
    if reply[i] == name then return reply[i + 1] end
  end
end
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local lost, position, first, last = 0, '', '', '$'
local stream = redis.pcall('XINFO', 'STREAM', KEYS[1])
if type(stream) == 'table' and not stream.err then
  last = field(stream, 'last-generated-id')
  local added, length = field(stream, 'entries-added'), field(stream, 'length')
  local deleted, head = field(stream, 'max-deleted-entry-id'), field(stream, 'first-entry')
  if added and head and (deleted == '0-0' or before(deleted, head[1])) then
    first = head[1]
    for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
      if field(group, 'name') == ARGV[1] then
        position = field(group, 'last-delivered-id')
        local read, gone = field(group, 'entries-read'), added - length
        if not read and position == last then
          redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], position, 'ENTRIESREAD', string.format('%d', added))
        elseif read and before(position, first) and gone > read then
          lost = gone - read
          redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], position, 'ENTRIESREAD', string.format('%d', gone))
        end
      end
    end
  end
end
local entries = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
return {lost, entries, position, first, last}
";
