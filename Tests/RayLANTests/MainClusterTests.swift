import RayLANTesting
import Testing

/// Every suite that needs a real local Ray nests here. Serialized: one local cluster at a time on a two-core
/// machine, because Ray's own start-up deadlines (Ray 2.45's dashboard must come up within 20 s) are missed
/// when clusters boot while others run jobs (`LocalRay.start` tries three times). The simulated LAN
/// (``SimulatedLANTests``) runs beside it: its Rays are in network namespaces of their own.
@Suite("Against real local Ray clusters", .serialized)
struct RayClusterTests {}

extension RayClusterTests {
    /// The suites nested here share one private local Ray 2.60 (4 logical CPUs, 1 logical GPU,
    /// `special: 2`), started before their first test and stopped after their last.
    @Suite("A local Ray 2.60", .cluster(.main))
    struct Main {}
}
