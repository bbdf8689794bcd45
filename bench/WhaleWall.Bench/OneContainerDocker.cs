using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Bench;

/// <summary>A Docker source that knows one container and no events (for benches that drive a
/// ContainerActor directly).</summary>
public sealed class OneContainerDocker(ContainerFacts facts) : IDockerSource
{
    public Task<IReadOnlyList<string>> ListContainerIdsAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<string>>([facts.Id]);
    public Task<IReadOnlyList<DockerNetwork>> ListNetworksAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<DockerNetwork>>([]);
    public Task<ContainerFacts?> InspectAsync(string id, CancellationToken ct) => Task.FromResult<ContainerFacts?>(facts);
    public Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, CancellationToken ct) => Task.FromResult<NetworkAttachment?>(null);
    public Task StreamEventsAsync(long sinceUnixNanos, Action<DockerEvent> onEvent, CancellationToken ct) => Task.Delay(Timeout.Infinite, ct);
}
