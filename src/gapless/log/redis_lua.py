"""The Lua scripts of `RedisLog` (`log/redis.py`): each step that must be atomic in Redis.

KEYS of every stream script: the stream, its hash (epoch, count `n`, last id, trim
floor) and the set of stream names; see `log/redis_layout.py` for what each means.
Imports nothing.
"""

# A stream whose entries are gone while its hash says it had some lost its history
# (or the hash was lost): draw a new epoch and start over, so old cursors reset.
_ENSURE = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if (not epoch) or (redis.call('HGET', KEYS[2], 'n') ~= '0'
                   and redis.call('EXISTS', KEYS[1]) == 0) then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'n', 0, 'last', '0-0', 'floor', '0-0')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
"""
# Also whether the entry at ARGV[3] (a cursor's id) is still there: see `redis_layout.judge`.
STATE = (
    _ENSURE
    + """
local state = redis.call('HMGET', KEYS[2], 'epoch', 'last', 'floor', 'n')
state[5] = ARGV[3] ~= '' and #redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3]) or 0
return state
"""
)
# An append is retried with the same token (ARGV[7]) when its reply was lost: the last
# token appended under KEYS[5] (per fence, or per token when unfenced) is kept with the
# entry it made, and a retry that finds it answers that entry instead of appending again.
# Checked before the fence: an append that made it before a revocation did happen.
# A revoked fence (KEYS[4], when ARGV[6] says there is one) refuses the append in the
# same step, so a revoked run can never publish after whoever revoked it.
APPEND = (
    """
local once = redis.call('GET', KEYS[5])
if once then
  local token, done_epoch, done_id = string.match(once, '^(%S+) (%S+) (%S+)$')
  if token == ARGV[7] then return {done_epoch, done_id} end
end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return false end
"""
    + _ENSURE
    + """
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
local id = redis.call('XADD', KEYS[1], '*', 'e',
                      n .. ' ' .. epoch .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
redis.call('HSET', KEYS[2], 'last', id)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('SET', KEYS[5], ARGV[7] .. ' ' .. epoch .. ' ' .. id, 'PX', ARGV[8])
return {epoch, id}
"""
)
# The floor is the newest entry actually trimmed, recorded in the same step as the trim.
TRIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[4]) end
  return false
end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local minid = ARGV[1]
if ARGV[2] == epoch then minid = ARGV[3] end
if minid == '0-0' then return false end
local before = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
if #before == 0 then return false end
redis.call('XTRIM', KEYS[1], 'MINID', minid)
redis.call('HSET', KEYS[2], 'floor', before[1][1])
return {epoch, before[1][1]}
"""
