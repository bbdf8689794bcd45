using System.Collections.Immutable;
using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Bench;

/// <summary>Injects container facts into the real actors without Docker: lists and inspects
/// the synthetic containers, and has no events. Everything downstream (DockerEventsActor,
/// ContainerActor, label parser, compiler, peer directory, writer, libnftables) is the real code.</summary>
public sealed class SyntheticDocker(int count, string prefix = "syn") : IDockerSource
{
    private readonly ImmutableDictionary<string, ContainerFacts> containers =
        Enumerable.Range(0, count).Select(i => Synthetic.Facts(i, prefix)).ToImmutableDictionary(f => f.Id);

    public Task<IReadOnlyList<string>> ListContainerIdsAsync(CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<string>>(containers.Keys.ToList());

    public Task<ContainerFacts?> InspectAsync(string id, CancellationToken ct) =>
        Task.FromResult(containers.GetValueOrDefault(id));

    public Task<IReadOnlyList<DockerNetwork>> ListNetworksAsync(CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<DockerNetwork>>([]);

    public Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, CancellationToken ct) =>
        Task.FromResult<NetworkAttachment?>(null);

    public Task StreamEventsAsync(long sinceUnixNanos, Action<DockerEvent> onEvent, CancellationToken ct) =>
        Task.Delay(Timeout.Infinite, ct);
}

/// <summary>The real Docker adapter, with the time of every event it delivers recorded.</summary>
public sealed class RecordingDockerSource(IDockerSource inner) : IDockerSource
{
    public sealed record Seen(DockerEvent Event, long ReceivedUnixNanos);

    private readonly List<Seen> seen = new();

    public List<Seen> Events { get { lock (seen) return seen.ToList(); } }

    /// <summary>One Docker API call made for a container: which, when it started and ended.</summary>
    public sealed record Call(string Method, string ContainerId, long StartUnixNanos, long EndUnixNanos);

    private readonly List<Call> calls = new();

    public List<Call> Calls { get { lock (calls) return calls.ToList(); } }

    private async Task<T> Timed<T>(string method, string id, Task<T> call)
    {
        var start = Clock.UnixNanos();
        try { return await call; }
        finally { lock (calls) calls.Add(new Call(method, id, start, Clock.UnixNanos())); }
    }

    public Task<IReadOnlyList<string>> ListContainerIdsAsync(CancellationToken ct) => inner.ListContainerIdsAsync(ct);
    public Task<ContainerFacts?> InspectAsync(string id, CancellationToken ct) => Timed("inspect", id, inner.InspectAsync(id, ct));
    public Task<IReadOnlyList<DockerNetwork>> ListNetworksAsync(CancellationToken ct) => inner.ListNetworksAsync(ct);
    public Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, CancellationToken ct) =>
        Timed("endpoint", containerId, inner.InspectEndpointAsync(networkId, containerId, ct));
    public Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, long sentAfter, CancellationToken ct) =>
        Timed("endpoint", containerId, inner.InspectEndpointAsync(networkId, containerId, sentAfter, ct));

    public Task StreamEventsAsync(long sinceUnixNanos, Action<DockerEvent> onEvent, CancellationToken ct) =>
        inner.StreamEventsAsync(sinceUnixNanos, e =>
        {
            lock (seen) seen.Add(new Seen(e, Clock.UnixNanos()));
            onEvent(e);
        }, ct);
}

public static class Clock
{
    public static long UnixNanos() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
}
