"""RayLAN's gateway: remote functions, actors and objects on the cluster over HTTP (`raylan call`, `put`,
`get`, `actor`, `task`), deployed by RayLAN as a Ray Serve application in front of one owner actor."""
