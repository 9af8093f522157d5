// RayLAN, the module a user imports: the library's targets, re-exported. RayLANCore: the cluster and its HTTP
// interfaces, Serve, TLS; RayLANGateway: remote functions, actors and objects; RayLANDetection: streamed images and
// work on the cluster (videos, streams, datasets); RayLANLocal: this machine's Ray processes and a node on a LAN host.
@_exported import RayLANCore
@_exported import RayLANDetection
@_exported import RayLANGateway
@_exported import RayLANLocal
