extension BotClassifier {
    typealias Marker = MarkerAutomaton.Marker

    /// What bots' user agents hold and people's browsers do not, by kind, in the notation of
    /// ``MarkerAutomaton/Marker`` (`^` opens the user agent, `$` closes it, `\b` is no letter or digit
    /// on that side).
    ///
    /// Most are the facts isbot gathered (github.com/omrilotan/isbot, `src/patterns.json`, public
    /// domain), written as markers with their exceptions; some come from the instances of
    /// crawler-user-agents (github.com/monperrus/crawler-user-agents, MIT). The exceptions are the
    /// browsers that hold a marker: Cubot phones, Google's own apps, cameras that scan, PlayStation's
    /// libhttp.
    static let markers: [Marker] = genericWords + kinds + names

    /// The words a bot names itself or its work with, and what only a program puts in a user agent:
    /// a link to a page about itself, a mail address, a domain.
    private static let genericWords: [Marker] = [
        Marker(#"bot\b"#, unlessAfter: [" cu"]), Marker(#"bots\b"#, unlessAfter: [" cu"]), "^bot",
        "crawl", "spider", "scrape", "fetcher", #"\bfetch"#, "retriever", "grab", "harvest", "archive", "^rank",
        "robot", #"agent\b"#,
        // A link (`+http://…/bot.html`) or a URL scheme: browsers link to nothing. libhttp is the
        // PlayStation's browser.
        Marker("http", unlessAfter: ["lib"]), "://", "www.", #".com\b"#, ".ai", "()", "|",
    ]

    /// Kinds of program that request pages without a person, by what they call themselves.
    private static let kinds: [Marker] = [
        // Monitors, uptime and health checks, synthetic tests.
        #"monitor\b"#, "monitoring", "uptime", #"check\b"#, "checker", "24x7", "pingdom",
        "statuscake", "synthetic", "site24x7", "dejaclick", "neustar wpm", "infrawatch", "iplabel",
        "rigor", "speedcurve", "dareboost", "^blackbox exporter", "linkcheck",
        // Feed readers and podcast clients.
        "feed", #"rss\b"#, "^rss", "aggregator", "^read", "^reed", "^downcast/", "newsblur",
        Marker("news", unlessAfter: ["g"], unlessBefore: ["sapphire"]),
        // Scanners, auditors and security tools.
        Marker("scan", unlessAfter: ["cam"]), "audit", "inspect", "detect", "analyzer", "analyser", "validator",
        "securityheaders", "hardenize", "foregenix", "openvas", "burpcollaborator", "nuclei", "zgrab", "masscan",
        "nmap", "nikto", "sqlmap", "abuse", "^clamav", "watchtowr",
        // SEO and marketing tools, site analysis.
        #"\bseo"#, "insight", "optimize", "measure", "pagespeed", "lighthouse", "grader", "advisor", "datanyze",
        "wappalyzer", "whatcms/", "marketgoo/", "silktide", "siteimprove", "semrush", "majestic", "screaming frog",
        "sistrix", "attracta", "prospectingstudio", "productfinder", "tools", "classifier", "discovery",
        // Link previews and unfurlers.
        "preview", "^facebook", "externalhit", "^whatsapp", "embedly", "iframely", "unfurl", "^snapchat", "vkshare",
        "quora link", "outbrain", "xing-contenttabreceiver", "^zoom marketplace/", "^discourse",
        "opengraph", "^w3c", "^taringa", "^movabletype", "^wordpress",
        // HTTP libraries, command-line clients and download tools.
        "curl", "wget", "^python", "urllib", "requests", "aiohttp", "httpx", "go-http", "okhttp", Marker("java", unlessBefore: [";"]),
        "apache-httpclient", "jakarta", #"\bperl\b"#, "^php", "guzzle", "node-fetch",
        #"node\b"#, "undici", "axios", "faraday", "rest-client", "^rest", "httpie", "postman",
        "insomnia", "winhttp", "^microsoft bits", "reqwest", "hyper/", "^dart:io", "dart/",
        "^getright/", "^gozilla/", "^igetter/", "download", "httrack", "^webcopier", "offline", "^svn",
        "powershell", "^apache/", "^jetty/", "^jigsaw", "^cobweb/", "^client/", "^custom", "library", "^ps_daily/",
        "transcoder", "torrent", "synapse", "^hwcdn/", "^stape/", "^thumbor/", "^remove.bg/", #"\bort/"#, #"\bbw/"#,
        #"\btime/"#, #"\bdlc\b"#, "^dispatch/", "^zdm/", "^avsdevicesdk/", "^email", "^track", "^exodusmovement",
        // Headless and automated browsers.
        "headless", "phantomjs", "selenium", "puppeteer", "playwright", "cypress/", "webdriver", "splash", "functionize",
        "webkit2png", "browsex", "dmbrowser", "ibisbrowser", "chromeframe", "^owler", "capture",
        // Archivers and caches.
        "heritrix", "wayback", "ia_archiver", "archive.org", "proxy", "cloudflare", "^azure", "virtuoso",
        // Search engines' own fetchers (their crawlers say bot already).
        Marker("google", unlessAfter: [" channel/", "google/"], unlessBefore: ["wv", "app", "/google", " pixel"]),
        "^yahoo", "^yandex", "^duckduckgo", "^ddg_android", "^ddg-android", "sogou", "^biglotron", " daum/", " daum ",
        " deusu/", "mail.ru/", "ask jeeves", "nutch", "exaleadcloudview",
        // AI assistants and agents fetching for someone.
        "^openai/", "^claude-code/", "cursor/", "manus-user/", "^sora ", "gptbot",
    ]

    /// Programs that name themselves by name only, none of the words above, and that isbot's and
    /// crawler-user-agents' lists hold.
    private static let names: [Marker] = [
        "^active", "^ad muncher", "^amaya", "bluecoat drtr", "catch", "collapsify", "convertify", "cookiehubverify/",
        "firephp", "hotjar", "^hobbit", "^hotzonu", "hubspot marketing grader", "^jeode/", "linktiger", "manager",
        "^navermailapp", "^netsurf", "offbyone", "pageburst", "parser", "powermarks", #"ptst "#, "ptst/", "radar",
        "readable/", "rexx;", "server", "sindup/", "sparkler/", "supercleaner", "testlocally", "upday/", "url",
        "webglance", "xtate/", "^space bison", "^swcd ", "^xenu link sleuth", "^webbandit/",
        Marker(#"search\b"#, inFirstWord: true),
    ]
}
