-- farm-measure.lua: run a farm-*.pkt setup for a fixed time and print the
-- transmit rate per port, once per second and on average.
--
--   pktgen <EAL args> -- -P -m "[1:2].0,[3:4].1" -f farm-syn-ack.pkt -f farm-measure.lua
--
-- pktgen only sees what it sends: what the farm accepted is in each node's
-- counters (farmctl status, or the data plane's to_tap / not_mine counters).
-- Their sum over the nodes must equal what pktgen sent, and each client must be
-- accepted by exactly one node.

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;../?.lua"
require "Pktgen"

local ports = PORTS or "0,1"
local seconds = SECONDS or 30

-- Field names of rte_eth_stats; newer pktgen versions nest them.
local function opackets(t)
    if t == nil then return 0 end
    if t.opackets ~= nil then return t.opackets end
    if t.pstats ~= nil and t.pstats.opackets ~= nil then return t.pstats.opackets end
    return 0
end

local function sent()
    local st = pktgen.portStats(ports, "port")
    local out = {}
    for p, v in pairs(st) do
        if type(p) == "number" then out[p] = opackets(v) end
    end
    return out
end

pktgen.clr()
local first = sent()
local prev = first
pktgen.start(ports)
for i = 1, seconds do
    pktgen.delay(1000)
    local now = sent()
    local line = string.format("t=%3ds", i)
    for p, v in pairs(now) do
        line = line .. string.format("  port %d %.3f Mpps", p, (v - (prev[p] or 0)) / 1e6)
    end
    print(line)
    prev = now
end
pktgen.stop(ports)
local total = 0
for p, v in pairs(prev) do total = total + (v - (first[p] or 0)) end
print(string.format("average over %d s: %.3f Mpps sent", seconds, total / seconds / 1e6))
