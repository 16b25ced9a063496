import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension WorkerProcess {
    /// Everything a worker process needs, built whole by `serve` from its options and handed to each
    /// worker as one JSON value on descriptor ``Supervisor/configurationDescriptor``: a worker parses
    /// no options of its own, so an option of `serve` is a field here and its use, and nothing is
    /// spelled out a second time as arguments.
    public struct Configuration: Sendable, Codable, Equatable {
        public var database: String
        /// This host's folder for the journals and audit log when `database` is a PostgreSQL URI.
        public var stateDirectory: String?
        /// The buffer, the writer and what they keep (`--batch-size`, `--count-bots`, `--store-ip`, …),
        /// with this worker's number.
        public var recorder: VisitRecorder.Configuration
        public var threads: Int
        public var statsCache: Duration
        public var healthThreshold: Duration
        /// Raw rows older than this many days are deleted (`--retention-days`); 0 keeps them all.
        public var retentionDays: Int
        /// The IANA name of the zone whose days are counted (`--time-zone`), which `serve` checked.
        public var timeZone: String
        /// `--index-template`: the file's path, for messages. Its text is not in here: `serve` read and
        /// parsed it once and shares it on descriptor ``Supervisor/templateDescriptor``, so a restarted
        /// worker renders the text that was checked, not the file as it is now.
        public var indexTemplate: String?
        /// `--index-csp`, in place of the template's own policy.
        public var indexCSP: String?
        /// Health answers 503 when the country database is older than this; `nil` never (`--geoip-max-age-days`).
        public var geoipMaxAge: Duration?
        /// The peers a TCP socket accepts (`--allowed-clients`); `nil` accepts any.
        public var allowList: PeerAllowList?
        /// The owner's addresses and ranges (`--ignore-ips`), whose requests count in `ignored` only.
        public var ignoredAddresses: PeerAllowList?
        /// The supervisor's ``WorkerStatusBoard``; `nil` leaves the health routes answering 404.
        public var statusDescriptor: Int32?
        public var listeningDescriptor: Int32

        /// This worker's number: its slot on the status board, its journal, its name in the logs.
        public var index: Int {
            get { recorder.worker }
            set { recorder.worker = newValue }
        }

        public init(
            database: String, stateDirectory: String? = nil, recorder: VisitRecorder.Configuration, threads: Int,
            statsCache: Duration, healthThreshold: Duration, retentionDays: Int = 0, indexTemplate: String? = nil,
            indexCSP: String? = nil, geoipMaxAge: Duration? = HealthReport.defaultGeoIPMaxAge,
            allowList: PeerAllowList? = nil, ignoredAddresses: PeerAllowList? = nil, statusDescriptor: Int32? = nil,
            listeningDescriptor: Int32 = 0, timeZone: String = "UTC"
        ) {
            self.timeZone = timeZone
            self.ignoredAddresses = ignoredAddresses
            self.database = database
            self.stateDirectory = stateDirectory
            self.recorder = recorder
            self.threads = threads
            self.statsCache = statsCache
            self.healthThreshold = healthThreshold
            self.retentionDays = retentionDays
            self.indexTemplate = indexTemplate
            self.indexCSP = indexCSP
            self.geoipMaxAge = geoipMaxAge
            self.allowList = allowList
            self.statusDescriptor = statusDescriptor
            self.listeningDescriptor = listeningDescriptor
        }

        /// The value as the supervisor hands it over.
        public func encoded() throws -> [UInt8] {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return Array(try encoder.encode(self))
        }

        /// The configuration the supervisor wrote on `descriptor`, read to its end and decoded.
        public init(reading descriptor: Int32) throws(ConfigurationError) {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count: Int
                do {
                    count = try chunk.withUnsafeMutableBytes { buffer in
                        try systemCall("read", "descriptor \(descriptor)") { read(descriptor, buffer.baseAddress, buffer.count) }
                    }
                } catch {
                    throw ConfigurationError(descriptor: descriptor, reason: "cannot be read: \(error)")
                }
                if count == 0 { break }
                bytes += chunk[0..<count]
            }
            do {
                self = try JSONDecoder().decode(Configuration.self, from: Data(bytes))
            } catch {
                throw ConfigurationError(descriptor: descriptor, reason: "is not one this version reads (\(error))")
            }
        }
    }

    /// A worker found no configuration it can use on its descriptor.
    public struct ConfigurationError: Error, CustomStringConvertible {
        public let descriptor: Int32
        public let reason: String

        public var description: String {
            "the worker configuration on descriptor \(descriptor) \(reason); workers are started by `visitor-counter serve`, "
                + "which hands each one its configuration: restart the service, and run the same version for serve and its workers"
        }
    }
}
