#!/usr/bin/perl
# Writes a small country database in MaxMind's format (what libnginx-mod-http-geoip2 and mmdblookup
# read), for tests: no real data is needed, and the build time is whatever the test asks for.
#
#   scripts/make-test-geoip.pl OUTPUT BUILD_EPOCH [DATABASE_TYPE [loopback-only]]
#
# BUILD_EPOCH is the Unix time written as the metadata's build_epoch (`date +%s -d '60 days ago'` for an
# old one). DATABASE_TYPE is the metadata's database_type, DBIP-Country-Lite unless given.
# `loopback-only` leaves every network out but loopback: a file that opens and resolves none of the
# public addresses an updater checks.
# Needs libmaxmind-db-writer-perl (scripts/install-deps.sh test installs it).
#
# The networks, each with its country's iso_code and English name, as DB-IP's and MaxMind's country
# databases have them. Loopback is mapped too (it has no country in real data), so that a test client
# on 127.0.0.1 or ::1 is counted under a country of its own:
#   127.0.0.0/8 FR, ::1/128 JP (loopback, IPv4 and IPv6)
#   81.2.69.0/24 GB, 8.8.8.0/24 US, 200.160.0.0/20 BR, 5.9.0.0/16 DE, 1.0.16.0/20 JP
#   2001:db8:1::/48 GB, 2001:db8:2::/48 US, 2001:db8:3::/48 DE (IPv6, from the documentation range)
# Anything else, 10.0.0.0/8 and 192.0.2.0/24 included, is not in the database.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my ($output, $epoch, $type, $only) = @ARGV;
die "usage: $0 OUTPUT BUILD_EPOCH [DATABASE_TYPE [loopback-only]]\n"
    unless defined $epoch && $epoch =~ /^\d+$/ && (!defined $only || $only eq 'loopback-only');
$type //= 'DBIP-Country-Lite';

my %names = (FR => 'France', JP => 'Japan', GB => 'United Kingdom', US => 'United States',
             BR => 'Brazil', DE => 'Germany');
my @networks = (
    ['127.0.0.0/8', 'FR'], ['::1/128', 'JP'],
    ['81.2.69.0/24', 'GB'], ['8.8.8.0/24', 'US'], ['200.160.0.0/20', 'BR'], ['5.9.0.0/16', 'DE'],
    ['1.0.16.0/20', 'JP'],
    ['2001:db8:1::/48', 'GB'], ['2001:db8:2::/48', 'US'], ['2001:db8:3::/48', 'DE'],
);
@networks = @networks[0, 1] if defined $only;

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 24,
    database_type         => $type,
    languages             => ['en'],
    description           => { en => "visitor-counter test database ($type)" },
    # IPv4 networks go to ::/96, as in the real files; the aliases make ::ffff:a.b.c.d (a client
    # seen through a dual-stack socket) find the same networks.
    alias_ipv6_to_ipv4    => 1,
    # Loopback and the documentation ranges are "reserved", and left out unless told otherwise.
    remove_reserved_networks => 0,
    map_key_type_callback => sub { { country => 'map', iso_code => 'utf8_string', names => 'map', en => 'utf8_string' }->{ $_[0] } },
);
for my $network (@networks) {
    my ($range, $code) = @$network;
    $tree->insert_network($range, { country => { iso_code => $code, names => { en => $names{$code} } } });
}
$tree->_set_build_epoch($epoch);   # the writer stamps the time of writing; a test wants its own
open my $file, '>:raw', $output or die "cannot write $output: $!\n";
$tree->write_tree($file);
close $file or die "cannot write $output: $!\n";
