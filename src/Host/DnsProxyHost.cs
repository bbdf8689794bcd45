using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Metrics;
using WhaleWall.DnsProxy;
using WhaleWall.Firewall.Dns;
using WhaleWall.Host.Metrics;

namespace WhaleWall.Host;

/// <summary>The DNS proxy in the daemon (docs/dns-proxy.md): the proxy's directory as container
/// actors write it, and its commits through the container actors and the writer.</summary>
public sealed class DnsProxyHost : IDisposable
{
    private readonly ProxyDirectory directory = new();
    private readonly ActorCommits commits = new();
    public DnsProxyServer Server { get; }
    public IDnsProxyClients Clients { get; }

    public DnsProxyHost(DnsProxySettings settings, DnsSettings dns, IReadOnlyList<IPEndPoint> fallback, DnsProxyMetrics? metrics = null)
    {
        var options = DnsProxyOptions.Default with
        {
            Listen = [settings.Listen],
            Rate = settings.Rate,
            Limits = LearningLimits.Default with { MinTtl = dns.MinTtl, MaxTtl = dns.MaxTtl, Grace = dns.Grace },
        };
        Server = new DnsProxyServer(options, directory, commits, observer: metrics);
        Clients = new Directory(directory, Server, fallback, metrics);
    }

    /// <summary>Starts listening once the actors are there (queries before the start-up table is
    /// in the kernel wait for it: their commits are answered only after the writer's).</summary>
    public void Start(IActorRef dockerEvents)
    {
        commits.DockerEvents = dockerEvents;
        Server.Start();
    }

    public void Dispose() => Server.Dispose();

    /// <summary>What each container's lookups opened, for <c>status</c> (daemon.json).</summary>
    public IReadOnlyDictionary<string, ImmutableArray<LearnedName>> Learned(DateTimeOffset now) =>
        Server.Learned().ToDictionary(c => c.Key, c => c.Value.ByName
            .SelectMany(n => n.Value.Where(a => a.Value > now).Select(a => new LearnedName(n.Key.ToString(), a.Key.ToString(), a.Value)))
            .OrderBy(l => l.Name, StringComparer.Ordinal).ThenBy(l => l.Address, StringComparer.Ordinal)
            .ToImmutableArray());

    /// <summary>The resolvers a proxied container's queries are forwarded to: its own as
    /// WhaleWall knows them (<c>HostConfig.Dns</c>, the Docker daemon's <c>dns</c>, the host's),
    /// never libnetwork's public fallbacks; without any, <c>WHALEWALL_DNS_SERVERS</c> or the
    /// host's resolvers.</summary>
    private sealed class Directory(ProxyDirectory directory, DnsProxyServer server, IReadOnlyList<IPEndPoint> fallback, DnsProxyMetrics? metrics) : IDnsProxyClients
    {
        public void Register(string containerId, IPAddress address, DnsPolicy policy, ImmutableArray<IPAddress> resolvers)
        {
            var own = resolvers.Where(r => !ContainerResolvers.DockerDefaults.Contains(r)).Select(r => new IPEndPoint(r, 53)).ToList();
            directory.Register(address, new ProxyClient(containerId, policy, own.Count > 0 ? own : fallback));
        }

        public void Unregister(string containerId, IPAddress address) => directory.Unregister(address, containerId);

        public void Forget(string containerId)
        {
            server.Forget(containerId);
            metrics?.Forget(containerId);
        }

        public void Restore(string containerId, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> learned) =>
            server.Restore(containerId, learned.Values.SelectMany(a => a));
    }

    /// <summary>A commit is the container actor's <c>LearnAddresses</c>, answered once the writer
    /// applied the elements: no timeout (only the proxy's shutdown cancels the wait).</summary>
    private sealed class ActorCommits : ILearnedAddresses
    {
        public IActorRef? DockerEvents;

        public async Task CommitAsync(string containerId, LearnedBatch batch, CancellationToken cancellation)
        {
            var events = DockerEvents ?? throw new InvalidOperationException("the daemon is starting");
            var answer = await events.Ask<ContainerEvents.Learned>(
                new ContainerCommands.ToContainer(containerId, new ContainerCommands.LearnAddresses(batch, DateTimeOffset.UtcNow)),
                Timeout.InfiniteTimeSpan, cancellation);
            if (answer.Error is { } error) throw new InvalidOperationException(error);
        }
    }
}
