/// The built-in index page: a Mustache template over ``Dashboard/context``, printed by
/// `visitor-counter template` as a starting point for `--index-template`.
///
/// Everything is inline (one `<style>`, one `<script>`, SVG for the chart and the share bars), so the
/// Content-Security-Policy names both by hash and allows nothing else. Nothing is styled through a
/// `style` attribute, which that policy would refuse. The page is complete without its script; the
/// script only refreshes the figures from `/api/sys/stats` while the page stays open (the chart of
/// days stays as it was served).
enum StandardIndexTemplate {
    static let text = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>Visitors</title>
        <style>
        :root { --bg: #f5f6f8; --card: #ffffff; --text: #16181d; --muted: #545a66; --line: #dfe2e8; --accent: #2456c7; --accent-soft: #6a88d6; --track: #e6ebf5; --up: #1a7f37; --down: #b42318; }
        @media (prefers-color-scheme: dark) {
          :root { --bg: #111318; --card: #1a1d24; --text: #eceef3; --muted: #a5abb8; --line: #2d313b; --accent: #8cb0ff; --accent-soft: #5470ad; --track: #262c3a; --up: #63d68a; --down: #ff9389; }
        }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--text); font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
        main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1rem 2.5rem; }
        header { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: .25rem 1rem; }
        h1 { font-size: 1.6rem; margin: 0; }
        .updated { margin: 0; color: var(--muted); font-size: .9rem; }
        .updated time { color: var(--text); }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .75rem; margin: 1.25rem 0 .75rem; padding: 0; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: .75rem; padding: .75rem 1rem; margin: 0; }
        .card dt { color: var(--muted); font-size: .85rem; }
        .card dd { margin: 0; font-size: 1.75rem; font-weight: 650; font-variant-numeric: tabular-nums; line-height: 1.2; }
        .card.main dd { color: var(--accent); }
        .periods { margin-top: 0; }
        .card dd.change { font-size: .85rem; font-weight: 600; line-height: 1.4; color: var(--muted); }
        .card dd.change.up { color: var(--up); }
        .card dd.change.down { color: var(--down); }
        section { background: var(--card); border: 1px solid var(--line); border-radius: .75rem; padding: 1rem; margin-top: .75rem; }
        h2 { font-size: 1.05rem; margin: 0 0 .75rem; }
        figure { margin: 0; }
        .chart { display: block; width: 100%; height: auto; }
        .chart .bar { fill: var(--accent); }
        .chart .bar.today { fill: var(--accent-soft); }
        .chart .axis { stroke: var(--line); stroke-width: 1; }
        .ticks { display: flex; justify-content: space-between; color: var(--muted); font-size: .8rem; margin-top: .25rem; }
        table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
        th, td { padding: .45rem .5rem; border-bottom: 1px solid var(--line); text-align: left; font-weight: normal; }
        thead th { color: var(--muted); font-size: .85rem; font-weight: 600; }
        tbody tr:last-child > * { border-bottom: 0; }
        .num { text-align: right; white-space: nowrap; }
        .flag { display: inline-block; width: 1.6em; font-family: "Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji", sans-serif; }
        .share { width: 38%; white-space: nowrap; }
        .share svg { width: calc(100% - 4rem); height: .55rem; vertical-align: middle; border-radius: .3rem; }
        .share .track { fill: var(--track); }
        .share .fill { fill: var(--accent); }
        .percent { display: inline-block; width: 3.75rem; text-align: right; color: var(--muted); }
        details { margin-top: .75rem; }
        summary { cursor: pointer; color: var(--muted); }
        .empty { color: var(--muted); margin: 0; }
        .lists { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 0 .75rem; }
        .lists .key { overflow-wrap: anywhere; }
        footer { color: var(--muted); font-size: .85rem; margin-top: 1.25rem; }
        a { color: var(--accent); }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
        @media (max-width: 32rem) {
          main { padding: 1rem .75rem 2rem; }
          .card.main { grid-column: 1 / -1; }
          .periods { grid-template-columns: 1fr; }
          .card dd { font-size: 1.4rem; }
          .share { width: 34%; }
          .share svg { width: calc(100% - 3.6rem); }
          .percent { width: 3.4rem; }
        }
        </style>
        </head>
        <body>
        <main id="dashboard" data-refresh="{{refresh_seconds}}">
        <header>
        <h1>Visitors</h1>
        <p class="updated">Last updated <time id="last-updated"{{#last_updated}} datetime="{{.}}"{{/last_updated}}{{#last_updated_utc}} title="{{.}}"{{/last_updated_utc}}>{{last_updated_relative}}</time><span id="last-updated-utc">{{#last_updated_utc}} · {{.}}{{/last_updated_utc}}</span></p>
        </header>

        <dl class="cards">
        <div class="card main"><dt>Total visitors</dt><dd id="total-visitors">{{total_visitors_text}}</dd></div>
        <div class="card"><dt>Unique today</dt><dd id="unique-visitors-today">{{unique_visitors_today_text}}</dd></div>
        <div class="card"><dt>Last 5 minutes</dt><dd id="last-5m">{{recent.last_5m_text}}</dd></div>
        <div class="card"><dt>Last hour</dt><dd id="last-1h">{{recent.last_1h_text}}</dd></div>
        <div class="card"><dt>Last 24 hours</dt><dd id="last-24h">{{recent.last_24h_text}}</dd></div>
        </dl>
        <dl class="cards periods" id="periods">
        {{#periods}}
        <div class="card" data-period="{{key}}" data-before="{{before}}"><dt>{{label}}</dt><dd class="visits">{{visitors_text}}</dd><dd class="change {{trend}}">{{change_text}}</dd></div>
        {{/periods}}
        </dl>

        <section aria-labelledby="days-heading">
        <h2 id="days-heading">Last 30 days</h2>
        <figure>
        <svg class="chart" viewBox="0 0 {{chart.width}} {{chart.height}}" role="img" aria-labelledby="chart-title" aria-describedby="chart-summary">
        <title id="chart-title">{{chart.title}}</title>
        <desc id="chart-summary">{{chart.summary}}</desc>
        <line class="axis" x1="0" y1="{{chart.baseline}}" x2="{{chart.width}}" y2="{{chart.baseline}}"/>
        {{#days}}
        <rect class="bar{{#is_today}} today{{/is_today}}" x="{{x}}" y="{{y}}" width="{{width}}" height="{{height}}"><title>{{label}}: {{visitors_text}} visits</title></rect>
        {{/days}}
        </svg>
        <div class="ticks" aria-hidden="true">{{#chart.ticks}}<span>{{.}}</span>{{/chart.ticks}}</div>
        </figure>
        <details>
        <summary>The 30 days as a table</summary>
        <table>
        <thead><tr><th scope="col">Day</th><th scope="col" class="num">Visits</th><th scope="col" class="num">Unique visitors</th></tr></thead>
        <tbody>
        {{#days}}
        <tr><th scope="row"><time datetime="{{date}}">{{label}}</time></th><td class="num">{{visitors_text}}</td><td class="num">{{unique_visitors_text}}</td></tr>
        {{/days}}
        </tbody>
        </table>
        </details>
        </section>

        <section aria-labelledby="countries-heading">
        <h2 id="countries-heading">Countries</h2>
        {{^has_countries}}
        <p class="empty" id="no-countries">No visits yet.</p>
        {{/has_countries}}
        <table id="countries"{{^has_countries}} hidden{{/has_countries}}>
        <caption class="visually-hidden">Visits by country, the most first</caption>
        <thead><tr><th scope="col">Country</th><th scope="col" class="num">Visits</th><th scope="col" class="share">Share</th></tr></thead>
        <tbody>
        {{#countries}}
        <tr data-code="{{code}}"><th scope="row"><span class="flag" aria-hidden="true">{{flag}}</span><span class="name">{{name}}</span></th><td class="num visits">{{visitors_text}}</td><td class="share"><svg viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true"><rect class="track" width="100" height="8"/><rect class="fill" width="{{share}}" height="8"/></svg><span class="percent">{{share_text}}</span></td></tr>
        {{/countries}}
        </tbody>
        </table>
        </section>

        <div class="lists">
        <section aria-labelledby="pages-heading">
        <h2 id="pages-heading">Pages, last 30 days</h2>
        {{^has_pages}}
        <p class="empty" id="no-pages">No pages yet.</p>
        {{/has_pages}}
        <table id="pages"{{^has_pages}} hidden{{/has_pages}}>
        <caption class="visually-hidden">Visits by page over the last 30 days, the most first</caption>
        <thead><tr><th scope="col">Page</th><th scope="col" class="num">Visits</th></tr></thead>
        <tbody>
        {{#pages}}
        <tr><th scope="row" class="key">{{path}}</th><td class="num">{{visitors_text}}</td></tr>
        {{/pages}}
        </tbody>
        </table>
        </section>

        <section aria-labelledby="referrers-heading">
        <h2 id="referrers-heading">Referrers, last 30 days</h2>
        {{^has_referrers}}
        <p class="empty" id="no-referrers">No visits from other sites yet.</p>
        {{/has_referrers}}
        <table id="referrers"{{^has_referrers}} hidden{{/has_referrers}}>
        <caption class="visually-hidden">Visits by the site they came from over the last 30 days, the most first</caption>
        <thead><tr><th scope="col">Site</th><th scope="col" class="num">Visits</th></tr></thead>
        <tbody>
        {{#referrers}}
        <tr><th scope="row" class="key">{{host}}</th><td class="num">{{visitors_text}}</td></tr>
        {{/referrers}}
        </tbody>
        </table>
        </section>
        </div>

        <footer>
        <p>Requests from bots, not counted as visits: <span id="bots">{{bots_text}}</span>. The figures as JSON: <a href="/api/sys/stats">/api/sys/stats</a>.</p>
        <p>Days run from midnight to midnight in <span id="time-zone">{{time_zone}}</span>.</p>
        {{#country_data}}<p id="country-data">Countries: {{#link}}<a href="{{link}}">{{credit}}</a>{{/link}}{{^link}}{{credit}}{{/link}}{{#month}}, {{month}} edition{{/month}}.</p>{{/country_data}}
        </footer>
        </main>
        <script>
        "use strict";
        (() => {
          const main = document.getElementById("dashboard");
          const seconds = Math.max(10, Number(main && main.dataset.refresh) || 0);
          if (!main || typeof fetch !== "function") return;
          const numbers = new Intl.NumberFormat("en");
          const regions = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "region" }) : null;
          const svg = "http://www.w3.org/2000/svg";
          const byId = (id) => document.getElementById(id);
          const setNumber = (id, value) => { const element = byId(id); if (element && Number.isFinite(value)) element.textContent = numbers.format(value); };

          function relative(iso) {
            const elapsed = Math.floor((Date.now() - Date.parse(iso)) / 1000);
            const ago = (count, unit) => `${count} ${unit}${count === 1 ? "" : "s"} ago`;
            if (!(elapsed >= 5)) return "just now";
            if (elapsed < 60) return ago(elapsed, "second");
            if (elapsed < 3600) return ago(Math.floor(elapsed / 60), "minute");
            if (elapsed < 86400) return ago(Math.floor(elapsed / 3600), "hour");
            return ago(Math.floor(elapsed / 86400), "day");
          }
          function showUpdated(iso) {
            const time = byId("last-updated");
            if (!time || !iso) return;
            const exact = `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
            time.dateTime = iso;
            time.title = exact;
            time.textContent = relative(iso);
            const utc = byId("last-updated-utc");
            if (utc) utc.textContent = ` · ${exact}`;
          }
          function flag(code) {
            if (code === "XX" || !/^[A-Z]{2}$/.test(code)) return "\u{1F310}";
            return String.fromCodePoint(...[...code].map((letter) => 0x1f1a5 + letter.charCodeAt(0)));
          }
          function countryName(code, known) {
            if (known.has(code)) return known.get(code);
            if (code === "XX") return "Unknown";
            try { return (regions && regions.of(code)) || code; } catch { return code; }
          }
          function element(name, className, text) {
            const node = document.createElement(name);
            if (className) node.className = className;
            if (text !== undefined) node.textContent = text;
            return node;
          }
          function countryRow(code, visitors, total, known) {
            const tenths = total > 0 ? Math.round(visitors * 1000 / total) : 0;
            const share = `${Math.floor(tenths / 10)}.${tenths % 10}`;
            const row = document.createElement("tr");
            row.dataset.code = code;
            const heading = element("th");
            heading.scope = "row";
            const flagSpan = element("span", "flag", flag(code));
            flagSpan.setAttribute("aria-hidden", "true");
            heading.append(flagSpan, element("span", "name", countryName(code, known)));
            const bar = document.createElementNS(svg, "svg");
            bar.setAttribute("viewBox", "0 0 100 8");
            bar.setAttribute("preserveAspectRatio", "none");
            bar.setAttribute("aria-hidden", "true");
            for (const [className, width] of [["track", "100"], ["fill", share]]) {
              const rect = document.createElementNS(svg, "rect");
              rect.setAttribute("class", className);
              rect.setAttribute("width", width);
              rect.setAttribute("height", "8");
              bar.append(rect);
            }
            const shareCell = element("td", "share");
            shareCell.append(bar, element("span", "percent", tenths === 0 && visitors > 0 ? "<0.1%" : `${share}%`));
            row.append(heading, element("td", "num visits", numbers.format(visitors)), shareCell);
            return row;
          }
          function showCountries(countries, total) {
            const table = byId("countries");
            if (!table || !countries) return;
            const known = new Map([...table.querySelectorAll("tbody tr[data-code]")].map((row) => [row.dataset.code, row.querySelector(".name").textContent]));
            const entries = Object.entries(countries).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
            table.tBodies[0].replaceChildren(...entries.map(([code, visitors]) => countryRow(code, visitors, total, known)));
            table.hidden = entries.length === 0;
            const empty = byId("no-countries");
            if (empty) empty.hidden = entries.length > 0;
          }
          // As the server writes it (PeriodChange): the trend and "+12% on the previous 7 days".
          function change(visitors, previous, before) {
            if (visitors === previous) return ["same", `same as ${before}`];
            if (previous === 0) return ["new", `new: none ${before.startsWith("the ") ? "in " : ""}${before}`];
            const percent = Math.round(Math.abs(visitors - previous) * 100 / previous);
            return [visitors > previous ? "up" : "down", `${visitors > previous ? "+" : "\u2212"}${percent === 0 ? "<1" : percent}% on ${before}`];
          }
          const previousKeys = { today: "yesterday", last_7_days: "previous_7_days", last_30_days: "previous_30_days" };
          function showPeriods(periods) {
            if (!periods) return;
            for (const card of document.querySelectorAll("[data-period]")) {
              const visitors = periods[card.dataset.period], previous = periods[previousKeys[card.dataset.period]];
              if (!Number.isFinite(visitors) || !Number.isFinite(previous)) continue;
              card.querySelector(".visits").textContent = numbers.format(visitors);
              const [trend, text] = change(visitors, previous, card.dataset.before || "");
              const line = card.querySelector(".change");
              line.className = `change ${trend}`;
              line.textContent = text;
            }
          }
          function show(stats) {
            setNumber("total-visitors", stats.total_visitors);
            setNumber("unique-visitors-today", stats.unique_visitors_today);
            if (stats.recent) {
              setNumber("last-5m", stats.recent.last_5m);
              setNumber("last-1h", stats.recent.last_1h);
              setNumber("last-24h", stats.recent.last_24h);
            }
            setNumber("bots", stats.bots);
            showPeriods(stats.periods);
            showUpdated(stats.last_updated);
            showCountries(stats.countries, stats.total_visitors);
            main.dataset.refreshedAt = new Date().toISOString();
          }
          async function read() {
            try {
              const response = await fetch("/api/sys/stats", { cache: "no-store", headers: { Accept: "application/json" } });
              return response.ok ? await response.json() : null;
            } catch {
              return null; // The counter is restarting or the network is down: the figures shown stay until the next try.
            }
          }
          async function refresh() {
            setTimeout(refresh, seconds * 1000);
            if (document.hidden) return;
            const stats = await read();
            if (stats) show(stats);
          }
          setTimeout(refresh, seconds * 1000);
        })();
        </script>
        </body>
        </html>

        """#
}
