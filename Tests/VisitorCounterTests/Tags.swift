import Foundation
import Testing

/// The services a suite needs beyond the test process, as Swift Testing tags. A suite that starts one
/// carries its tag (`@Suite(.serialized, .tags(.nginx))`), and `scripts/test.sh --unit` leaves out every
/// suite or test that carries one of them.
///
/// Swift 6.3's `swift test` selects tests only by regular expressions on their names (`--filter`,
/// `--skip`); filtering by tag from the command line (`--skip tag:nginx`) came to Swift Testing after
/// 6.3. So `scripts/test.sh --unit` reads the tags from the `@Suite` and `@Test` lines of these files and
/// skips those names. Keep a tag on the attribute's first line, where the script reads it.
extension Tag {
    /// Starts nginx, or runs the `nginx` program (``LocalStack``, `nginx -t`).
    @Tag static var nginx: Self
    /// Starts a PostgreSQL server of its own (``PostgresCluster``).
    @Tag static var postgres: Self
    /// Needs root beyond what the other tags need: mounts a filesystem, or runs the counter as another user.
    @Tag static var root: Self
    /// Runs Chromium.
    @Tag static var browser: Self
}

/// The environment variable `scripts/test.sh --unit` sets, so that a service started in a unit run fails
/// loudly rather than slowing the run down.
let unitRunVariable = "VISITOR_COUNTER_UNIT_RUN"

/// Fails loudly when a test starts `what`, a service of `tag`, without carrying the tag, or in a unit run.
/// The helpers that start services call it first, so that a new suite that needs nginx, PostgreSQL, a
/// browser or root but forgot its tag fails in every run, CI's included, instead of slowing the unit run.
func requireTag(_ tag: Tag, for what: String) throws {
    if ProcessInfo.processInfo.environment[unitRunVariable] != nil {
        throw TestFailure(
            "\(what) was started in a unit run (scripts/test.sh --unit): give the suite `.tags(\(tag))` on its "
                + "@Suite line, where scripts/test.sh reads it")
    }
    if let test = Test.current, !test.tags.contains(tag) {
        throw TestFailure(
            "\(test.name) starts \(what) but its suite has no `.tags(\(tag))`: add it, so that "
                + "scripts/test.sh --unit leaves the suite out")
    }
}
