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
/// An answer serves a container in two cases. (1) It lists the container and its request was
/// sent after <c>sentAfter</c>, the moment WhaleWall received the container's previous Docker
/// event (its create, or its last disconnect, die or stop): Docker emits an event for every end of
/// an endpoint, in order, so a network read after that moment shows no endpoint of the container
/// older than its current one. (2) Its request was sent after the lookup began (after the
/// container's `connect` was received): then it decides, listed or not, as the container's own
/// request would.
///
/// At most one request per network is in flight. A lookup the one in flight cannot decide waits
/// for the next, which leaves as soon as the one in flight answers and serves every lookup that
/// waits for it: under churn at 1,000 containers, 20 lookups at once made 20 inspects of 1,000
/// endpoints each (dockerd's work, and an HTTP buffer and a parsed answer apiece in WhaleWall),
/// now one at a time. A request that does not answer within <c>timeout</c> (10 s; dockerd answers
/// one without waiting for any container's lock) fails its lookups and makes way for the next;
/// a failed lookup leaves the container to its inspect, as before. Times are WhaleWall's own
/// <see cref="System.Diagnostics.Stopwatch"/> timestamps, never Docker's clock.</summary>
public sealed class NetworkEndpoints(Func<string, CancellationToken, Task<NetworkView?>> inspect, Func<long>? clock = null, TimeSpan? timeout = null)
{
    private sealed record Call(long SentAt, long Generation, Task<NetworkView?> Answer);

    /// <summary>One network's requests: the newest answered, the one in flight, the next one's lookups.</summary>
    private sealed class Flight
    {
        public (Call Call, NetworkView? View)? Answered;
        public Call? InFlight;
        public TaskCompletionSource<Call>? Next;
    }

    private readonly Func<long> clock = clock ?? System.Diagnostics.Stopwatch.GetTimestamp;
    private readonly TimeSpan timeout = timeout ?? TimeSpan.FromSeconds(10);
    private readonly object gate = new();
    private readonly Dictionary<string, Flight> flights = new();
    private long generation;

    /// <summary>Docker calls made (for tests and the bench).</summary>
    public long Calls => Interlocked.Read(ref calls);
    private long calls;

    /// <summary>The container's endpoint on the network, or null when a request sent after the
    /// lookup began does not list it.</summary>
    public async Task<NetworkAttachment?> FindAsync(string networkId, string containerId, long sentAfter, CancellationToken ct)
    {
        var began = clock();
        // at most three turns: a request sent before the lookup began, then one sent after it
        while (true)
        {
            Task<Call> waiting;
            Send? send = null;
            lock (gate)
            {
                var flight = flights.TryGetValue(networkId, out var f) ? f : flights[networkId] = new Flight();
                if (flight.Answered is var (done, view) && Serves(done, sentAfter) && Find(view, containerId) is { } known) return known;
                if (flight.InFlight is not { } current) waiting = Task.FromResult((send = Reserve(networkId, flight)).Call);
                else if (current.SentAt >= began || Serves(current, sentAfter)) waiting = Task.FromResult(current);
                else waiting = (flight.Next ??= new TaskCompletionSource<Call>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            send?.Go();

            var call = await waiting.WaitAsync(ct);
            try
            {
                var view = await call.Answer.WaitAsync(ct);
                if (Find(view, containerId) is { } listed && (call.SentAt >= began || Serves(call, sentAfter))) return listed;
                if (call.SentAt >= began) return null;
            }
            catch (Exception) when (call.SentAt < began && !ct.IsCancellationRequested) { } // not this lookup's request
        }
    }

    /// <summary>The network is gone (its `destroy` event): nothing of it is shared any more.</summary>
    public void Forget(string networkId)
    {
        lock (gate) flights.Remove(networkId);
    }

    /// <summary>The event stream (re)connects: events may have been lost, nothing asked before is shared.</summary>
    public void ForgetAll()
    {
        lock (gate) generation++;
    }

    private bool Serves(Call call, long sentAfter) => call.SentAt > sentAfter && call.Generation == generation;

    /// <summary>A request reserved under the gate and sent outside it.</summary>
    private sealed record Send(Call Call, Action Go);

    /// <summary>Makes the network's next request the one in flight (under the gate); <see
    /// cref="Send.Go"/> sends it. When it answers, the request waiting behind it leaves.</summary>
    private Send Reserve(string networkId, Flight flight)
    {
        // the time is taken before the request leaves: the answer is at least that recent
        var answer = new TaskCompletionSource<NetworkView?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var call = new Call(clock(), generation, answer.Task);
        flight.InFlight = call;
        return new Send(call, () =>
        {
            Interlocked.Increment(ref calls);
            // the token frees dockerd's connection; WaitAsync bounds the wait even if it is ignored
            var limit = new CancellationTokenSource(timeout);
            Task<NetworkView?> asked;
            try { asked = inspect(networkId, limit.Token).WaitAsync(timeout); }
            catch (Exception e) { asked = Task.FromException<NetworkView?>(e); }
            asked.ContinueWith(t =>
            {
                limit.Dispose();
                Send? next = null;
                TaskCompletionSource<Call>? waiters = null;
                lock (gate)
                {
                    if (t.IsCompletedSuccessfully && (flight.Answered is not var (newest, _) || newest.SentAt <= call.SentAt))
                        flight.Answered = (call, t.Result);
                    if (flight.InFlight == call)
                    {
                        flight.InFlight = null;
                        if (flight.Next is { } w)
                        {
                            flight.Next = null;
                            waiters = w;
                            next = Reserve(networkId, flight);
                        }
                    }
                }
                // the answer is published once the next request is in flight: a lookup that finds
                // itself unlisted and turns again sees that one, never this one again
                next?.Go();
                if (t.IsCompletedSuccessfully) answer.SetResult(t.Result);
                else answer.SetException(t.Exception?.InnerExceptions ?? [new TaskCanceledException()]);
                waiters?.SetResult(next!.Call);
            }, TaskScheduler.Default);
        });
    }

    private static NetworkAttachment? Find(NetworkView? view, string containerId) =>
        view?.Endpoints.GetValueOrDefault(containerId);
}
