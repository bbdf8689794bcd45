using System.Collections.Concurrent;
using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Tests.Actors;

/// <summary>Records every committed transaction; fails those that contain <see cref="Poison"/> or
/// match <see cref="Refuse"/>, and throws <see cref="ThrowNext"/> times. Dry runs
/// (<see cref="Check"/>) judge the same way and commit nothing.</summary>
public sealed class FakeNftables : INftables
{
    public ConcurrentQueue<string> Transactions { get; } = new();
    public string? Poison { get; set; }
    public Func<string, bool>? Refuse { get; set; }
    public int ThrowNext;
    public int DryRuns;
    /// <summary>When set, transactions wait for it (the writer is busy in the kernel meanwhile).</summary>
    public ManualResetEventSlim? Hold { get; set; }

    /// <summary>What listing the table returns (libnftables JSON); null: the table does not exist.</summary>
    public string? Listing { get; set; }

    /// <summary>Transactions begun (held ones included).</summary>
    public int Begun => begun;
    private int begun;

    public NftResult Run(string json)
    {
        Interlocked.Increment(ref begun);
        Hold?.Wait(TimeSpan.FromSeconds(10));
        if (json.Contains("{\"list\":")) return Listing is { } listing ? NftResult.Success(listing) : NftResult.Failure("Error: No such file or directory");
        if (Interlocked.Decrement(ref ThrowNext) >= 0) throw new InvalidOperationException("injected fault");
        if (Refused(json)) return NftResult.Failure("Error: Could not process rule: File exists");
        Transactions.Enqueue(json);
        return NftResult.Success();
    }

    public NftResult Check(string json)
    {
        Interlocked.Increment(ref DryRuns);
        return Refused(json) ? NftResult.Failure("Error: Could not process rule: File exists") : NftResult.Success();
    }

    private bool Refused(string json) => (Poison is not null && json.Contains(Poison)) || (Refuse?.Invoke(json) ?? false);
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

    /// <summary>When set, an inspect holds its caller's thread this long before it returns a task
    /// (a client that connects and writes its request synchronously).</summary>
    public TimeSpan InspectHoldsCaller { get; set; }

    public Task<ContainerFacts?> InspectAsync(string id, CancellationToken ct)
    {
        if (InspectHoldsCaller > TimeSpan.Zero) Thread.Sleep(InspectHoldsCaller);
        return InspectAfterGateAsync(id);
    }

    private async Task<ContainerFacts?> InspectAfterGateAsync(string id)
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
