import RayLANTesting
import Testing

/// Every suite nested here shares one private local Ray 2.60 (4 logical CPUs, 1 logical GPU,
/// `special: 2`), started before its first test and stopped after its last.
@Suite("Against a local Ray 2.60", .cluster(.main))
struct MainClusterTests {}
