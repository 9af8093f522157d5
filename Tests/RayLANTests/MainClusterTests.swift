import RayLANTesting
import Testing

/// The suites that share the local Ray 2.60 (``Main``), and Ray 2.45's, nest here. Serialized: Ray's own start-up
/// deadlines (Ray 2.45's dashboard must come up within 20 s) are missed when clusters boot while others run jobs
/// on two cores (`LocalRay.start` tries three times).
@Suite("Against real local Ray clusters", .serialized)
struct RayClusterTests {}

/// The suites that start Rays of their own and need nothing of ``RayClusterTests``' (the simulated LAN in its
/// network namespaces, the token-authenticated cluster, the embedded one) nest here: serialized among
/// themselves, and run beside ``RayClusterTests``, which takes their time out of the suite's wall time.
@Suite("Beside them: Rays of their own", .serialized)
struct OwnClusterTests {}

extension RayClusterTests {
    /// The suites nested here share one private local Ray 2.60 (4 logical CPUs, 1 logical GPU,
    /// `special: 2`), started before their first test and stopped after their last.
    @Suite("A local Ray 2.60", .cluster(.main))
    struct Main {}
}
