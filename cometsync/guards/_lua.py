"""The Lua twins of ``admission``'s pure functions, run atomically by Redis.

Admission touches its (key, model) hash and, to count a call, the key's budget hash: both
carry the key's hash tag, so they sit in one Redis Cluster slot.

Each script reads its key's hash, makes the same decision as its Python twin, writes back
only what changed, and sets an expiry on the key: the furthest time it still matters plus
``ttl`` (admission), or two budget windows. Numbers are written with ``%.17g`` so that a
double survives the round trip through a Redis string exactly (Lua's default keeps 14
digits), which is what lets a test compare decisions for equality.
"""

from __future__ import annotations

__all__ = ["ADMIT_LUA", "BUDGET_LUA", "OBSERVE_LUA"]

_PRELUDE = """
local key = KEYS[1]
local s = {}
local raw = redis.call('HGETALL', key)
for i = 1, #raw, 2 do s[raw[i]] = tonumber(raw[i + 1]) end
local function fmt(x) return string.format('%.17g', x) end
local function limit(c, l)
  if c > 0 and l > 0 then return math.min(c, l) end
  if c > 0 then return c end
  return l
end
local function save(now, ttl, names)
  local args = {}
  for _, n in ipairs(names) do
    if s[n] ~= nil then
      args[#args + 1] = n
      args[#args + 1] = fmt(s[n])
    end
  end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
  local far = now
  for _, n in ipairs({'rt', 'tt', 'hold', 'open', 'probe', 'lastf'}) do
    if s[n] ~= nil and s[n] > far then far = s[n] end
  end
  redis.call('PEXPIRE', key, math.ceil((ttl + far - now) * 1000))
end
"""

_BUDGET_FN = """
local function budget_op(bkey, now, retry, ratio, floor, window)
  local current = math.floor(now / (window / 10.0))
  local calls, retries = 0, 0
  local raw = redis.call('HGETALL', bkey)
  for i = 1, #raw, 2 do
    local name = raw[i]
    if tonumber(string.sub(name, 2)) <= current - 10 then
      redis.call('HDEL', bkey, name)
    elseif string.sub(name, 1, 1) == 'c' then
      calls = calls + tonumber(raw[i + 1])
    else
      retries = retries + tonumber(raw[i + 1])
    end
  end
  local field
  if retry == 0 then
    field = 'c' .. string.format('%d', current)
  else
    if retries + 1 > ratio * calls + floor then return 0 end
    field = 'r' .. string.format('%d', current)
  end
  redis.call('HINCRBY', bkey, field, 1)
  redis.call('PEXPIRE', bkey, math.ceil(window * 2000))
  return 1
end
"""

ADMIT_LUA = (
    _PRELUDE
    + _BUDGET_FN
    + """
local now, mode = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm, tokens = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local probe_timeout, probe_poll = tonumber(ARGV[6]), tonumber(ARGV[7])
local skip_after, ttl = tonumber(ARGV[8]), tonumber(ARGV[9])
local settle, count_call = tonumber(ARGV[10]), tonumber(ARGV[11])
local ratio, floor, window = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local ahead = tonumber(ARGV[15] or '0')
if count_call ~= 0 then budget_op(KEYS[2], now, 0, ratio, floor, window) end
local t_limit = limit(tpm, s.ltpm or 0)
local dirty = {}
if settle ~= 0 and t_limit > 0 and s.tt ~= nil then
  s.tt = s.tt + settle * 60.0 / t_limit
  dirty[#dirty + 1] = 'tt'
end
local function answer(verdict, value)
  if #dirty > 0 then save(now, ttl, dirty) end
  return {verdict, fmt(value)}
end
if mode == 3 then
  if s.open == nil then
    if now < (s.hold or 0) then return answer('hold', s.hold - now) end
    return answer('go', 0)
  end
  if now < s.open then return answer('cooldown', s.open - now) end
  return answer('half-open', 0)
end
local hold = s.hold or 0
local probed = false
if mode == 1 and ahead > 0 and s.open ~= nil and now < s.open then
  return answer('cooldown', s.open - now)
end
if mode ~= 1 then
  local opened = s.open
  if opened ~= nil and now < opened then return answer('cooldown', opened - now) end
  local probe = s.probe or 0
  if opened ~= nil and now < probe then
    return answer('probing', math.min(probe_poll, probe - now))
  end
  if hold - now > skip_after then return answer('hold', hold - now) end
  if opened ~= nil then
    s.probe = now + probe_timeout
    dirty[#dirty + 1] = 'probe'
    probed = true
  end
  if mode == 0 then
    if probed then return answer('probe', 0) end
    return answer('go', 0)
  end
end
local function later(reason, value)
  if mode == 1 then return answer(reason, value) end
  if probed then return answer('probe-wait', value) end
  return answer('wait', value)
end
if now < hold then return later('hold', hold - now) end
local wait = 0
local new_rt, new_tt = nil, nil
local r_limit = limit(rpm, s.lrpm or 0)
if r_limit > 0 then
  local interval = 60.0 / r_limit
  new_rt = math.max(s.rt or now, now) + interval
  wait = math.max(wait, new_rt - math.max(1.0, interval) - now)
end
if tokens > 0 and t_limit > 0 then
  local cost = tokens * 60.0 / t_limit
  new_tt = math.max(s.tt or now, now) + cost
  wait = math.max(wait, new_tt - math.max(1.0, cost) - now)
end
local queued = mode == 1 and wait > 1e-6 and wait <= ahead
if wait > 1e-6 and not queued then return later('rate', wait) end
if new_rt ~= nil then
  s.rt = new_rt
  dirty[#dirty + 1] = 'rt'
end
if new_tt ~= nil then
  s.tt = new_tt
  dirty[#dirty + 1] = 'tt'
end
if queued then return answer('queued', wait) end
if probed then return answer('probe', 0) end
return answer('go', 0)
"""
)

OBSERVE_LUA = (
    _PRELUDE
    + """
local now, kind, retry_after = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local hold, lrpm, ltpm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local settle, tpm = tonumber(ARGV[7]), tonumber(ARGV[8])
local failures, cooldown = tonumber(ARGV[9]), tonumber(ARGV[10])
local max_cooldown, window, ttl = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local names = {'hold', 'lrpm', 'ltpm', 'tt', 'open', 'probe', 'fails', 'lastf', 'hint', 'cool',
  'trips'}
local function forget()
  redis.call('HDEL', key, 'open', 'probe', 'fails', 'lastf', 'hint', 'cool')
  s.open, s.probe, s.fails, s.lastf, s.hint, s.cool = nil, nil, nil, nil, nil, nil
end
if hold >= 0 then s.hold = math.max(s.hold or 0, now + hold) end
if lrpm > 0 then s.lrpm = lrpm end
if ltpm > 0 then s.ltpm = ltpm end
local t_limit = limit(tpm, s.ltpm or 0)
if settle ~= 0 and t_limit > 0 and s.tt ~= nil then s.tt = s.tt + settle * 60.0 / t_limit end
local opened = s.open
local event, value = '', 0
if kind == 1 then
  if s.fails ~= nil or opened ~= nil then
    forget()
    if opened ~= nil then event = 'closed' end
  end
elseif kind == 0 then
  if opened ~= nil and now >= opened and s.probe ~= nil then
    redis.call('HDEL', key, 'probe')
    s.probe = nil
  end
elseif kind == 2 then
  if opened == nil and now - (s.lastf or -math.huge) > window then
    s.fails = 0
    if s.hint ~= nil then redis.call('HDEL', key, 'hint') end
    s.hint = nil
  end
  s.fails = (s.fails or 0) + 1
  s.lastf = now
  local hint = s.hint or -math.huge
  if retry_after >= 0 then
    hint = math.max(hint, now + retry_after)
    s.hint = hint
  end
  local cool = nil
  if opened ~= nil and now >= opened then
    if max_cooldown > 0 then
      cool = math.min(max_cooldown, (s.cool or cooldown) * 2)
    else
      cool = cooldown
    end
  elseif opened == nil and s.fails >= failures then
    cool = cooldown
  elseif opened ~= nil then
    s.open = math.max(opened, hint)
  end
  if cool ~= nil then
    s.cool = cool
    s.open = math.max(now + cool, hint)
    if s.probe ~= nil then redis.call('HDEL', key, 'probe') end
    s.probe = nil
    s.trips = (s.trips or 0) + 1
    event, value = 'tripped', s.open - now
  end
end
save(now, ttl, names)
return {event, fmt(value)}
"""
)

BUDGET_LUA = (
    _BUDGET_FN
    + """
return budget_op(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]))
"""
)
