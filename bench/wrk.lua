-- wrk script for scripts/bench.sh: every request comes from another address, over addresses in
-- several countries (the local nginx trusts X-Forwarded-For from 127.0.0.1), so the GeoIP lookup and
-- the per-country counts do real work. At the end it prints one machine-readable line.
local addresses = {
    "81.2.69.142", "8.8.8.8", "200.160.2.3", "5.9.0.1", "1.0.16.1", "10.1.2.3",
    "81.2.69.160", "8.8.4.4", "200.160.7.1", "5.9.10.1", "1.0.17.1", "192.0.2.1",
}
local counter = 0

request = function()
    counter = counter + 1
    return wrk.format(nil, nil, {
        ["X-Forwarded-For"] = addresses[counter % #addresses + 1],
        -- A browser's: wrk's own requests carry no user agent, and the counter counts those as bots.
        ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    })
end

done = function(summary, latency, requests)
    local seconds = summary.duration / 1e6
    local non2xx = summary.errors.status
    local failed = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT requests=%d ok=%d failed=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f\n",
        summary.requests, summary.requests - non2xx, failed + non2xx, summary.requests / seconds,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
