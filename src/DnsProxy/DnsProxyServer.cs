using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ARSoft.Tools.Net.Dns;
using WhaleWall.Firewall.Dns;

namespace WhaleWall.DnsProxy;

/// <summary>
/// The DNS proxy: UDP and TCP listeners (ARSoft.Tools.Net's <see cref="DnsServer"/>), one
/// query at a time through the pure core:
/// <list type="number">
/// <item>the source address names the container (<see cref="IProxyDirectory"/>);</item>
/// <item>its token bucket, then <see cref="QueryDecider"/>: refused queries are answered at
/// once and never forwarded;</item>
/// <item>allowed ones go to the container's upstreams (<see cref="UpstreamClient"/>);</item>
/// <item><see cref="AnswerDecider"/> picks what opens and what is released;</item>
/// <item>the answer waits for <see cref="ILearnedAddresses.CommitAsync"/> (no timeout).</item>
/// </list>
/// Thin by design: every decision is in <c>WhaleWall.Firewall.Dns</c>. Its own state is one
/// token bucket and the learned addresses per container, rebuilt from nothing after a restart
/// (the kernel keeps the elements with their timeouts meanwhile).
/// </summary>
public sealed class DnsProxyServer : IDisposable
{
    private readonly DnsProxyOptions options;
    private readonly IProxyDirectory directory;
    private readonly ILearnedAddresses learned;
    private readonly TimeProvider time;
    private readonly IDnsProxyObserver? observer;
    private readonly UpstreamClient upstream;
    private readonly ConcurrentDictionary<string, ContainerState> states = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();
    private DnsServer? server;

    private sealed class ContainerState(TokenBucket bucket)
    {
        public readonly Lock Gate = new();
        public TokenBucket Bucket = bucket;
        public LearnedAddresses Learned = LearnedAddresses.Empty;
    }

    public DnsProxyServer(DnsProxyOptions options, IProxyDirectory directory, ILearnedAddresses learned,
        TimeProvider? time = null, SocketFactory? upstreamSockets = null, IDnsProxyObserver? observer = null)
    {
        this.options = options;
        this.directory = directory;
        this.learned = learned;
        this.time = time ?? TimeProvider.System;
        this.observer = observer;
        upstream = new UpstreamClient(upstreamSockets ?? ((f, t, p) => new Socket(f, t, p)));
    }

    /// <summary>Binds the listeners (in the calling thread's network namespace) and serves.</summary>
    public void Start()
    {
        var transports = new List<IServerTransport>();
        foreach (var endpoint in options.Listen)
        {
            transports.Add(new UdpServerTransport(endpoint, (int)options.UpstreamTimeout.TotalMilliseconds));
            transports.Add(new TcpServerTransport(endpoint, 10_000, 30_000));
        }
        server = new DnsServer([.. transports]);
        server.QueryReceived += async (_, e) =>
        {
            if (e.Query is DnsMessage query)
                e.Response = await HandleAsync(query, e.RemoteEndpoint, stopping.Token);
        };
        server.Start();
    }

    /// <summary>What each container has learned and not yet expired (for <c>status</c>:
    /// names, addresses, expiry).</summary>
    public IReadOnlyDictionary<string, LearnedAddresses> Learned()
    {
        var now = time.GetUtcNow();
        var result = new Dictionary<string, LearnedAddresses>(StringComparer.Ordinal);
        foreach (var (id, state) in states)
            lock (state.Gate) result[id] = state.Learned.Prune(now);
        return result;
    }

    /// <summary>Start-up: addresses the container learned before the daemon restarted (still in
    /// the kernel until they expire) count against its cap (docs/dns-proxy.md "Restart").</summary>
    public void Restore(string containerId, IEnumerable<KeyValuePair<IPAddress, DateTimeOffset>> carried)
    {
        var state = states.GetOrAdd(containerId, _ => new ContainerState(TokenBucket.Full(options.Rate, time.GetUtcNow())));
        lock (state.Gate) state.Learned = LearnedAddresses.Restored(state.Learned.Carried.Concat(carried)) with { ByName = state.Learned.ByName };
    }

    /// <summary>A container is gone: its bucket and learned addresses go too.</summary>
    public void Forget(string containerId) => states.TryRemove(containerId, out _);

    /// <summary>Answers one query from <paramref name="remote"/> (public for the benchmark and
    /// tests; the listeners call it).</summary>
    public async Task<DnsMessage> HandleAsync(DnsMessage query, IPEndPoint remote, CancellationToken cancellation)
    {
        var started = Stopwatch.GetTimestamp();
        var upstreamTime = TimeSpan.Zero;
        var response = query.CreateResponseInstance();
        string? containerId = null;
        void Done(ProxyOutcome outcome, ReturnCode rcode, string? reason)
        {
            response.ReturnCode = rcode;
            observer?.Answered(containerId, outcome, Stopwatch.GetElapsedTime(started), upstreamTime, reason);
        }

        var source = remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address;
        var client = directory.Find(source);
        if (client is null)
        {
            Done(ProxyOutcome.UnknownSource, ReturnCode.Refused, $"{source} is no container the proxy serves");
            return response;
        }
        containerId = client.ContainerId;
        var state = states.GetOrAdd(client.ContainerId, _ => new ContainerState(TokenBucket.Full(options.Rate, time.GetUtcNow())));
        lock (state.Gate)
        {
            (var allowed, state.Bucket) = state.Bucket.Take(options.Rate, time.GetUtcNow());
            if (!allowed)
            {
                Done(ProxyOutcome.RateLimited, ReturnCode.Refused, "query rate limit");
                return response;
            }
        }

        var questions = query.Questions.Select(QueryWire.Question).ToArray();
        var decision = QueryDecider.Decide(client.Policy, (int)query.OperationCode, questions);
        if (decision is QueryDecision.Refuse refuse)
        {
            Done(ProxyOutcome.Refused, (ReturnCode)refuse.Rcode, refuse.Reason);
            return response;
        }
        var forward = (QueryDecision.Forward)decision;

        UpstreamClient.Result? result = null;
        var asked = Stopwatch.GetTimestamp();
        foreach (var resolver in client.Upstreams)
        {
            result = await upstream.AskAsync(resolver, forward.Name, forward.Type, options.UpstreamTimeout, cancellation);
            if (result is not null) break;
        }
        upstreamTime = Stopwatch.GetElapsedTime(asked);
        if (result is null)
        {
            Done(ProxyOutcome.Failed, ReturnCode.ServerFailure, "no upstream answered");
            return response;
        }

        AnswerDecision answer;
        lock (state.Gate)
        {
            (answer, state.Learned) = AnswerDecider.Decide(client.Policy, forward, result.Sent, result.Answer,
                state.Learned, options.Limits, time.GetUtcNow());
        }
        if (answer is AnswerDecision.Fail fail)
        {
            Done(ProxyOutcome.Failed, ReturnCode.ServerFailure, fail.Reason);
            return response;
        }
        var release = (AnswerDecision.Release)answer;
        if (release.Commit is { } batch)
        {
            try
            {
                // no timeout: the answer waits for the kernel, however long it takes
                await learned.CommitAsync(client.ContainerId, batch, cancellation);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellation.IsCancellationRequested)
            {
                Done(ProxyOutcome.Failed, ReturnCode.ServerFailure, "commit failed: " + e.Message);
                return response;
            }
        }

        foreach (var index in release.Keep)
            response.AnswerRecords.Add(QueryWire.Capped(result.Message.AnswerRecords[index], release.MaxTtl));
        if (release.Keep.IsEmpty)
            response.AuthorityRecords.AddRange(result.Message.AuthorityRecords.Where(r => r.RecordType == RecordType.Soa));
        var released = response.AnswerRecords
            .Select(r => r switch
            {
                ARecord a => (a.Address, TimeSpan.FromSeconds(a.TimeToLive)),
                AaaaRecord a => (a.Address, TimeSpan.FromSeconds(a.TimeToLive)),
                _ => ((IPAddress, TimeSpan)?)null,
            })
            .OfType<(IPAddress, TimeSpan)>().ToList();
        if (released.Count > 0) observer?.Resolved(client.ContainerId, forward.Name.ToString(), released);
        if (forward.WouldRefuse is { } would) Done(ProxyOutcome.AuditRefused, (ReturnCode)release.Rcode, "audit, would refuse: " + would);
        else Done(ProxyOutcome.Allowed, (ReturnCode)release.Rcode, null);
        return response;
    }

    public void Dispose()
    {
        stopping.Cancel();
        server?.Stop();
        (server as IDisposable)?.Dispose();
    }
}
