using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Docker;

/// <summary>One Docker event that may change a container's rules.</summary>
/// <param name="NetworkId">For network connect/disconnect: the network.</param>
/// <param name="Attributes">The event's attributes (for container events: labels, name, image).</param>
public sealed record DockerEvent(string Type, string Action, string ContainerId, long TimeNano,
    string? NetworkId = null, IReadOnlyDictionary<string, string>? Attributes = null);

/// <summary>The port to the Docker daemon: WhaleWall only ever reads.</summary>
public interface IDockerSource
{
    Task<IReadOnlyList<string>> ListContainerIdsAsync(CancellationToken ct);

    Task<IReadOnlyList<DockerNetwork>> ListNetworksAsync(CancellationToken ct);

    /// <summary>The container's facts, or null when it no longer exists.</summary>
    Task<ContainerFacts?> InspectAsync(string id, CancellationToken ct);

    /// <summary>The container's endpoint on one network, from the network's side. Docker
    /// holds a container's lock while starting it, so inspecting the container right after
    /// `network connect` waits until the process runs; the network answers at once.</summary>
    Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, CancellationToken ct);

    /// <summary>The same, answered from a network inspect another container asked for when that
    /// request was sent after <paramref name="sentAfter"/> (a <see cref="System.Diagnostics.Stopwatch"/>
    /// timestamp) and lists the container (<see cref="NetworkEndpoints"/>); otherwise as above.</summary>
    Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, long sentAfter, CancellationToken ct) =>
        InspectEndpointAsync(networkId, containerId, ct);

    /// <summary>Streams events at or after <paramref name="sinceUnixNanos"/> into
    /// <paramref name="onEvent"/> (called in order, synchronously) until the stream fails
    /// or <paramref name="ct"/> is cancelled.</summary>
    Task StreamEventsAsync(long sinceUnixNanos, Action<DockerEvent> onEvent, CancellationToken ct);
}
