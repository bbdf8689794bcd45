using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Nft;
using WhaleWall.DnsProxy;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Names;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>The DNS proxy's answer delay with the commit it waits for (issue 15): the real proxy,
/// ContainerActor (proxied) and writer on the bench's table. Each answer renews or adds the
/// container's own elements, and the answer leaves only after the writer's transaction, exactly
/// as in the daemon (minus the Docker events actor's forwarding). Added = proxied - direct.</summary>
public static class DnsProxyCommit
{
    private const string Name = "api.commit.example";

    /// <summary>The container actor registers its address and DNS policy here (as with the
    /// daemon's directory); the bench's stub asks from loopback, so every source is that container.</summary>
    private sealed class OneContainerDirectory(IPEndPoint upstream) : IDnsProxyClients, IProxyDirectory
    {
        private volatile ProxyClient? client;

        public void Register(string containerId, IPAddress address, DnsPolicy policy, ImmutableArray<IPAddress> resolvers) =>
            client = new ProxyClient(containerId, policy, [upstream]);

        public void Unregister(string containerId, IPAddress address) => client = null;

        public void Forget(string containerId) { }

        public void Restore(string containerId, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> learned) { }

        public ProxyClient? Find(IPAddress source) => client;
    }

    /// <summary>What the daemon's DnsProxyHost does, without the events actor in between.</summary>
    private sealed class ActorCommit(IActorRef container) : ILearnedAddresses
    {
        public async Task CommitAsync(string containerId, LearnedBatch batch, CancellationToken cancellation)
        {
            var answer = await container.Ask<ContainerEvents.Learned>(
                new ContainerCommands.LearnAddresses(batch, DateTimeOffset.UtcNow), Timeout.InfiniteTimeSpan, cancellation);
            if (answer.Error is { } error) throw new InvalidOperationException(error);
        }
    }

    public static async Task RunAsync(Ctx ctx)
    {
        var rounds = ctx.Short ? 100 : 2000;
        var system = Ctx.NewActorSystem("wwbench-dnsproxy");
        try
        {
            using var upstream = TestDnsServer.Start("/proc/self/ns/net", "127.0.0.1", port: 0, withTcp: false);
            upstream.Set(Name, 300, "198.19.0.10", "198.19.0.11");
            // renewals as the daemon makes them on this kernel
            var renewByAdd = RenewalProbe.AddRenews(ctx.Nft, ctx.Table);
            var writer = system.ActorOf(NftWriterActor.Props(ctx.Nft, ctx.Table, options: WriterOptions.Default with { RenewByAdd = renewByAdd }));
            writer.Tell(new NftWriterCommands.ExpectOwners([]));
            var peers = system.ActorOf(Props.Create<PeerDirectoryActor>());
            var labels = new Dictionary<string, string>
            {
                [LabelKeys.Enabled] = "true",
                [LabelKeys.Rules] = "output:\n  - hosts: [\"*.commit.example\"]\n    proto: tcp\n    dst_ports: [443]\n",
            }.ToImmutableDictionary();
            var facts = new ContainerFacts("dnsproxybench", "dnsproxybench", true, labels,
                [new NetworkAttachment("bench", "bench", IPAddress.Parse("198.18.9.3"), null)], []);
            var directory = new OneContainerDirectory(upstream.Endpoint);
            var container = system.ActorOf(ContainerActor.Props(facts.Id, new OneContainerDocker(facts), writer, peers,
                services: new ContainerServices(null, BindingSettings.Off) { Dns = directory }));
            container.Tell(new ContainerCommands.Refresh("bench"));
            // the container is enforced (its first fragment applied) before the first query
            await WaitEnforced(container);

            var port = DnsProxyLatency.FreeUdpPort();
            var options = DnsProxyOptions.Default with { Listen = [new IPEndPoint(IPAddress.Loopback, port)], Rate = new RateLimit(1e9, 1e9) };
            using var proxy = new DnsProxyServer(options, directory, new ActorCommit(container));
            proxy.Start();
            var proxied = new IPEndPoint(IPAddress.Loopback, port);

            DnsProxyLatency.Sequential(upstream.Endpoint, 50, Name);
            DnsProxyLatency.Sequential(proxied, 50, Name);
            var (direct, _) = DnsProxyLatency.Sequential(upstream.Endpoint, rounds, Name);
            var transactions = WhaleWall.Actors.Metrics.WhaleWallMetrics.NftTransactionSeconds.WithLabels("single");
            var (txSum, txCount) = (transactions.Sum, transactions.Count);
            var (through, _) = DnsProxyLatency.Sequential(proxied, rounds, Name);
            ctx.Log($"dns proxy with commits: {transactions.Count - txCount} writer transactions, mean {(transactions.Sum - txSum) / Math.Max(1, transactions.Count - txCount) * 1000:F2} ms in libnftables");
            var added50 = Stats.Percentile(through, 50) - Stats.Percentile(direct, 50);
            var added99 = Stats.Percentile(through, 99) - Stats.Percentile(direct, 99);
            ctx.Log($"dns proxy with commits: direct {Stats.P50P99(direct)}; proxied {Stats.P50P99(through)}");
            ctx.Report.Add("DNS proxy: added latency per answer, each answer committed to the kernel (container actor + writer) before release",
                $"p50 {Stats.Ms(added50)}, p99 {Stats.Ms(added99)} over the upstream's own {Stats.P50P99(direct)}, 2 addresses renewed per answer ({(renewByAdd ? "add" : "delete + add")})",
                "p99 < 5 ms", added99 < 5);
        }
        finally
        {
            await system.Terminate();
            ctx.DropTable();
        }
    }

    private static async Task WaitEnforced(IActorRef container)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            var answer = await container.Ask<ContainerEvents.Learned>(
                new ContainerCommands.LearnAddresses(new LearnedBatch(DnsName.Parse(Name), [], []), DateTimeOffset.UtcNow), TimeSpan.FromSeconds(5));
            if (answer.Error is null) return;
            await Task.Delay(20);
        }
        throw new TimeoutException("dns proxy bench: the container was not enforced in time");
    }

}
