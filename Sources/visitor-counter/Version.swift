/// The one place the version is written: `visitor-counter --version` prints it, and
/// `scripts/package.sh` asks the binary it built for it to name the .deb, so the two cannot disagree.
let visitorCounterVersion = "0.1.0"
