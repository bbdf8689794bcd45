using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using Akka.Actor;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Bench;

/// <summary>DNS answer change -> kernel set element updated: the real HostnamesActor, resolver
/// actor, ContainerActor and writer on the bench's table; a resolver that hands out a new
/// address every time the test says so, stamping the moment it did. Measured: from that moment
/// to the writer's answer for the Program carrying the new address (the kernel committed it).
/// The polling interval (half the TTL) is not part of the figure: it is configuration.</summary>
public static class DnsChange
{
    private sealed class ChangingResolver : IDnsResolver
    {
        public volatile int Epoch;
        public long HandedOutTicks;
        private int lastHanded = -1;

        public Task<DnsAnswer> ResolveAsync(string name, CancellationToken ct)
        {
            var epoch = Epoch;
            if (epoch != lastHanded)
            {
                lastHanded = epoch;
                Interlocked.Exchange(ref HandedOutTicks, Stopwatch.GetTimestamp());
            }
            var address = IPAddress.Parse($"198.19.{100 + epoch / 250 % 50}.{1 + epoch % 250}");
            return Task.FromResult(new DnsAnswer([(address, TimeSpan.FromMilliseconds(200))], null));
        }
    }

    public static async Task RunAsync(Ctx ctx)
    {
        var rounds = ctx.Short ? 5 : 60;
        var system = Ctx.NewActorSystem("wwbench-dns");
        try
        {
            var log = new WriterProbe.Log();
            var writer = system.ActorOf(NftWriterActor.Props(ctx.Nft, ctx.Table));
            var probe = system.ActorOf(WriterProbe.Props(writer, log));
            probe.Tell(new NftWriterCommands.ExpectOwners([]));
            var resolver = new ChangingResolver();
            var hostnames = system.ActorOf(HostnamesActor.Props(resolver,
                new DnsSettings(TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1))));
            var peers = system.ActorOf(Props.Create<PeerDirectoryActor>());
            var labels = new Dictionary<string, string>
            {
                [LabelKeys.Enabled] = "true",
                [LabelKeys.Rules] = "output:\n  - hosts: [api.bench.example]\n    proto: tcp\n    dst_ports: [443]\n",
            }.ToImmutableDictionary();
            var facts = new ContainerFacts("dnsbench", "dnsbench", true, labels,
                [new NetworkAttachment("bench", "bench", IPAddress.Parse("198.18.9.2"), null)], []);
            var container = system.ActorOf(ContainerActor.Props(facts.Id, new OneContainerDocker(facts), probe, peers, null, hostnames));
            container.Tell(new ContainerCommands.Refresh("bench"));
            await WaitFor(() => log.All.Any(a => a.Ok && !a.Empty), TimeSpan.FromSeconds(10));

            var latencies = new List<double>();
            for (var round = 1; round <= rounds; round++)
            {
                var answeredBefore = log.All.Count;
                resolver.Epoch = round;
                await WaitFor(() => Interlocked.Read(ref resolver.HandedOutTicks) > 0 && log.All.Count > answeredBefore &&
                    log.All.Skip(answeredBefore).Any(a => a.SentTicks >= Interlocked.Read(ref resolver.HandedOutTicks)), TimeSpan.FromSeconds(5));
                var handed = Interlocked.Read(ref resolver.HandedOutTicks);
                var answer = log.All.Skip(answeredBefore).First(a => a.SentTicks >= handed);
                if (answer.Ok) latencies.Add(Stopwatch.GetElapsedTime(handed, answer.AnsweredTicks).TotalMilliseconds);
            }
            ctx.Report.Add("DNS: answer change -> kernel set element updated", $"{Stats.P50P99(latencies)} over {latencies.Count} changes (TTL 200 ms)",
                "p50/p99 < 5 ms", latencies.Count > 0 && Stats.Percentile(latencies, 99) < 5);
        }
        finally
        {
            await system.Terminate();
            ctx.DropTable();
        }
    }

    private static async Task WaitFor(Func<bool> condition, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > timeout) throw new TimeoutException("dns bench: the kernel was not updated in time");
            await Task.Delay(5);
        }
    }
}
