// RayLAN, the module a user imports: the library's core (RayLANCore: clusters and their HTTP interfaces, Serve,
// detection, the gateway, work on the cluster, TLS) and this machine's own Ray processes (RayLANLocal: the
// embedded cluster, process groups, a node on a LAN host).
@_exported import RayLANCore
@_exported import RayLANLocal
