-- Argo CD health check for commerce.shopplatform.io/Shop.
-- Argo CD runs it with gopher-lua: the Shop is the global `obj`; only the
-- base, table and (safe) os libraries are loaded, so no string.* calls here.
-- Tested by internal/argocd (go test ./internal/argocd).
local hs = { status = "Progressing", message = "Waiting for the shop-operator to report status" }

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (spec.paused is true)"
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  return hs
end

-- A status written for an older generation says nothing about the current
-- spec: comparing generations keeps the health from flapping to Healthy.
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.message = "Waiting for the shop-operator to observe generation " .. tostring(generation) ..
    " (status is for generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local conditions = {}
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    conditions[c.type] = c
  end
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled, "The Shop is stalled")
  return hs
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready, "The Shop is ready")
  return hs
end

local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = message(reconciling, "The Shop is reconciling")
  return hs
end

hs.message = message(ready, "Waiting for the Shop to become ready")
return hs
