<?php
// The usual alternative: a visit counter written the way a PHP site would write one. Every visit is
// one SQLite transaction (insert the row, add one to the total) on the request path, with SQLite's
// defaults, then the page shows the total.
$path = getenv('COUNTER_DB') ?: ($_SERVER['COUNTER_DB'] ?? '/tmp/php-counter.sqlite');
$db = new PDO('sqlite:' . $path);
$db->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
$db->exec('CREATE TABLE IF NOT EXISTS visitors (id INTEGER PRIMARY KEY, ip TEXT, user_agent TEXT,
    country TEXT, country_code TEXT, timestamp TEXT)');
$db->exec('CREATE TABLE IF NOT EXISTS visitor_stats (id INTEGER PRIMARY KEY, total_visitors INTEGER,
    last_updated TEXT)');
$db->exec('INSERT OR IGNORE INTO visitor_stats (id, total_visitors) VALUES (1, 0)');

$now = gmdate('Y-m-d\TH:i:s\Z');
$db->exec('BEGIN IMMEDIATE');
$insert = $db->prepare('INSERT INTO visitors (ip, user_agent, country, country_code, timestamp)
    VALUES (?, ?, ?, ?, ?)');
$insert->execute([
    $_SERVER['REMOTE_ADDR'] ?? null,
    substr($_SERVER['HTTP_USER_AGENT'] ?? '', 0, 512),
    $_SERVER['GEOIP_COUNTRY_NAME'] ?? 'Unknown',
    $_SERVER['GEOIP_COUNTRY_CODE'] ?? 'XX',
    $now,
]);
$db->prepare('UPDATE visitor_stats SET total_visitors = total_visitors + 1, last_updated = ? WHERE id = 1')
    ->execute([$now]);
$db->exec('COMMIT');

$total = $db->query('SELECT total_visitors FROM visitor_stats WHERE id = 1')->fetchColumn();
header('Content-Type: text/html; charset=utf-8');
header('Cache-Control: no-store');
echo '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Visitors</title></head>',
    '<body><h1>Visitors</h1><p>', (int)$total, ' visits in all.</p></body></html>', "\n";
