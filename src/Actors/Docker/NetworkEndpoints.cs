using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Docker;

/// <summary>One answer of Docker's network inspect: every container's endpoint on the network.</summary>
public sealed record NetworkView(string Id, ImmutableDictionary<string, NetworkAttachment> Endpoints);

/// <summary>Shares Docker's network inspects between the containers on a network. At `network
/// connect` the endpoint's address is known only to the network (the container inspect waits
/// until the process runs, the container list has no address until then), and that inspect lists
/// every endpoint: an answer asked for by one container usually already holds the next ones'.
///
/// An answer serves a container only if its request was sent after <c>sentAfter</c>, the moment
/// WhaleWall received the container's previous Docker event (its create, or its last disconnect,
/// die or stop): Docker emits an event for every end of an endpoint, in order, so a network read
/// after that moment shows no endpoint of the container older than its current one. Only an
/// answer that holds the container is shared; otherwise (or when none is recent enough) the
/// container's own request, sent after its `connect` was received, decides, as without sharing.
/// Times are WhaleWall's own <see cref="System.Diagnostics.Stopwatch"/> timestamps, never Docker's clock.</summary>
public sealed class NetworkEndpoints(Func<string, CancellationToken, Task<NetworkView?>> inspect, Func<long>? clock = null)
{
    private sealed record Call(long SentAt, long Generation, Task<NetworkView?> Answer);

    private readonly Func<long> clock = clock ?? System.Diagnostics.Stopwatch.GetTimestamp;
    private readonly object gate = new();
    private readonly Dictionary<string, Call> newest = new();
    private long generation;

    /// <summary>Docker calls made (for tests and the bench).</summary>
    public long Calls => Interlocked.Read(ref calls);
    private long calls;

    /// <summary>The container's endpoint on the network, or null when a request sent now does not list it.</summary>
    public async Task<NetworkAttachment?> FindAsync(string networkId, string containerId, long sentAfter, CancellationToken ct)
    {
        Call? shared;
        lock (gate)
            shared = newest.GetValueOrDefault(networkId) is { } c && c.SentAt > sentAfter && c.Generation == generation ? c : null;
        if (shared is { Answer.IsCompletedSuccessfully: true } && Find(shared.Answer.Result, containerId) is { } known) return known;

        var own = Start(networkId, ct);
        if (shared is { Answer.IsCompleted: false })
        {
            // whichever answers first with the container: the one in flight was sent after sentAfter too
            if (await Task.WhenAny(shared.Answer, own) == shared.Answer && shared.Answer.IsCompletedSuccessfully &&
                Find(shared.Answer.Result, containerId) is { } early)
            {
                _ = own.ContinueWith(t => _ = t.Exception, TaskScheduler.Default); // its failure is nobody's
                return early;
            }
        }
        return Find(await own, containerId);
    }

    /// <summary>The network is gone (its `destroy` event): nothing of it is shared any more.</summary>
    public void Forget(string networkId)
    {
        lock (gate) newest.Remove(networkId);
    }

    /// <summary>The event stream (re)connects: events may have been lost, nothing asked before is shared.</summary>
    public void ForgetAll()
    {
        lock (gate)
        {
            newest.Clear();
            generation++;
        }
    }

    private Task<NetworkView?> Start(string networkId, CancellationToken ct)
    {
        long sentAt, asOf;
        lock (gate)
        {
            // the time is taken before the request leaves: the answer is at least that recent
            sentAt = clock();
            asOf = generation;
        }
        var call = new Call(sentAt, asOf, inspect(networkId, ct));
        Interlocked.Increment(ref calls);
        lock (gate)
            if (!newest.TryGetValue(networkId, out var old) || old.SentAt <= call.SentAt) newest[networkId] = call;
        return call.Answer;
    }

    private static NetworkAttachment? Find(NetworkView? view, string containerId) =>
        view?.Endpoints.GetValueOrDefault(containerId);
}
