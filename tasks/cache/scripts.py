"""Lua scripts that do the warm's work inside the server.

Why Lua: one round trip moves a whole batch (SCAN + COPY ... REPLACE for each key), so the
copy runs at server speed and the task's memory never depends on the namespace's size. Each
call is bounded (at most `batch` keys handled and `rounds` SCAN calls), so the server is never
blocked for more than a few milliseconds and live traffic interleaves between calls.

The scripts discover keys with SCAN and therefore touch keys they do not declare in KEYS: they
need a cache with cluster mode disabled (a single shard, as the service's cache is).
"""

from __future__ import annotations

# ARGV: source prefix, target prefix, cursor, batch, MATCH pattern, max SCAN rounds,
#       transform prefix ('' = no transform), footprint sample interval, SCAN COUNT.
# Returns {cursor, copied, bytes, [suffix, value, pexpiretime]*}: keys whose suffix starts with
# the transform prefix and hold a string are not copied but returned for the client to reshape.
# COPY keeps the TTL. bytes estimates the copied keys' footprint: MEMORY USAGE (default
# sampling) of every `sample`-th copied key, scaled to all of them. Measuring every key cost as
# much as a tenth of the server's time per key (MEMORY USAGE of a hashtable set walks its
# members), for a figure that is an estimate anyway.
# Each SCAN asks for a few dozen keys and copies them at once, while the entries that SCAN just
# read are still in the CPU's caches: the server's time per key is memory-bound (hash-table
# lookups), and a SCAN of 1,000 keys before copying them cost up to a fifth more per key.
COPY_BATCH = """
local call, sub = redis.call, string.sub
local src, dst, cursor = ARGV[1], ARGV[2], ARGV[3]
local batch, pattern, rounds, tprefix = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7]
local sample, count = tonumber(ARGV[8]), tonumber(ARGV[9])
local n, tn = #src, #tprefix
local copied, sampled, measured, npending = 0, 0, 0, 0
local out = {}
repeat
  local reply = call('SCAN', cursor, 'MATCH', pattern, 'COUNT', count)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    local suffix = sub(key, n + 1)
    if tn > 0 and sub(suffix, 1, tn) == tprefix and call('TYPE', key).ok == 'string' then
      local value = call('GET', key)
      if value then
        out[#out + 1] = suffix
        out[#out + 1] = value
        out[#out + 1] = call('PEXPIRETIME', key)
        npending = npending + 1
      end
    elseif call('COPY', key, dst .. suffix, 'REPLACE') == 1 then
      if copied % sample == 0 then
        measured = measured + (call('MEMORY', 'USAGE', key) or 0)
        sampled = sampled + 1
      end
      copied = copied + 1
    end
  end
  rounds = rounds - 1
until cursor == '0' or copied + npending >= batch or rounds <= 0
local bytes = 0
if sampled > 0 then bytes = math.floor(measured * copied / sampled) end
table.insert(out, 1, bytes)
table.insert(out, 1, copied)
table.insert(out, 1, cursor)
return out
"""

# ARGV: cursor, MATCH pattern, batch, max SCAN rounds. Returns {cursor, deleted}.
# UNLINK frees memory in a background thread; keys go in chunks to stay far below Lua's
# limit on unpack() arguments.
DELETE_BATCH = """
local cursor, pattern, batch, rounds = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local deleted = 0
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', batch)
  cursor = reply[1]
  local keys = reply[2]
  for i = 1, #keys, 500 do
    deleted = deleted + redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys)))
  end
  rounds = rounds - 1
until cursor == '0' or deleted >= batch or rounds <= 0
return {cursor, deleted}
"""
