import RayLANCore

extension GatewayDeployment: ServeApplication {
    package func applicationConfig(code: StagedCode, keyArguments: [String: JSONValue]) -> JSONValue {
        applicationConfig(workingDirectoryURI: code.uri, keyArguments: keyArguments)
    }

    /// The same code, limits and access.
    package func isRunning(as running: ServeStatus.Application, code: StagedCode, token: AuthToken?) -> Bool {
        running.workingDirectoryURI == code.uri
            && limitArguments.allSatisfy { running.deployedAppConfig?["args"]?[$0.key] == $0.value }
            && running.grants(access, token: token)
    }

    /// A gateway without a key where Serve's proxy (or the cluster) is reachable beyond this machine.
    package func refusal(on cluster: RayCluster, serve: ServeStatus, httpHost: String?) -> (any Error)? {
        guard access == .open,
            let place = RayCluster.openGatewayExposure(
                clusterHost: cluster.address.host, serve: serve, httpHost: httpHost)
        else { return nil }
        return RayCluster.openRefused(reachableAt: place)
    }
}
