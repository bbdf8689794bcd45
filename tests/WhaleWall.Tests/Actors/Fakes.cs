using System.Collections.Concurrent;
using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Tests.Actors;

/// <summary>Records every transaction; fails those that contain <see cref="Poison"/>.</summary>
public sealed class FakeNftables : INftables
{
    public ConcurrentQueue<string> Transactions { get; } = new();
    public string? Poison { get; set; }

    public NftResult Run(string json)
    {
        if (json.Contains("{\"list\":")) return NftResult.Failure("Error: No such file or directory");
        if (Poison is not null && json.Contains(Poison)) return NftResult.Failure("Error: Could not process rule: File exists");
        Transactions.Enqueue(json);
        return NftResult.Success();
    }
}

/// <summary>An in-memory Docker: containers by id, an event stream the test drives.</summary>
public sealed class FakeDockerSource : IDockerSource
{
    public ConcurrentDictionary<string, ContainerFacts> Containers { get; } = new();
    public ConcurrentDictionary<string, NetworkAttachment> Endpoints { get; } = new();
    public ConcurrentQueue<long> StreamSinces { get; } = new();
    public TaskCompletionSource? InspectGate { get; set; }
    private Action<DockerEvent>? sink;
    private TaskCompletionSource streamEnd = new();

    /// <summary>When set, listing fails with it (Docker unreachable).</summary>
    public Exception? ListFailure { get; set; }

    public Task<IReadOnlyList<string>> ListContainerIdsAsync(CancellationToken ct) =>
        ListFailure is { } e
            ? Task.FromException<IReadOnlyList<string>>(e)
            : Task.FromResult<IReadOnlyList<string>>(Containers.Keys.ToList());

    public ConcurrentBag<DockerNetwork> Networks { get; } = new();

    public Task<IReadOnlyList<DockerNetwork>> ListNetworksAsync(CancellationToken ct) =>
        ListFailure is { } e
            ? Task.FromException<IReadOnlyList<DockerNetwork>>(e)
            : Task.FromResult<IReadOnlyList<DockerNetwork>>(Networks.ToList());

    public async Task<ContainerFacts?> InspectAsync(string id, CancellationToken ct)
    {
        if (InspectGate is { } gate) await gate.Task;
        return Containers.TryGetValue(id, out var f) ? f : null;
    }

    public Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, CancellationToken ct) =>
        Task.FromResult(Endpoints.TryGetValue(containerId, out var a) ? a : null);

    public async Task StreamEventsAsync(long sinceUnixNanos, Action<DockerEvent> onEvent, CancellationToken ct)
    {
        StreamSinces.Enqueue(sinceUnixNanos);
        sink = onEvent;
        await streamEnd.Task.WaitAsync(ct);
    }

    public void Emit(DockerEvent e) => sink!(e);

    /// <summary>Breaks the current stream as if the daemon went away.</summary>
    public void FailStream()
    {
        var old = streamEnd;
        streamEnd = new TaskCompletionSource();
        old.SetException(new IOException("connection reset"));
    }
}
