using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using System.Text.RegularExpressions;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Nft;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Tests.Actors;

/// <summary>The writer's expiry sweep and the kernel's element timeouts agree: the kernel lets a
/// DNS element go no later than the sweep that cuts its flows looks at it, so a flow opened while
/// the kernel still held the element is always cut. Driven by Akka's test scheduler (the
/// writer's clock).</summary>
public class NftWriterExpirySpecs() : TestKit(
    $"akka.scheduler.implementation = \"Akka.TestKit.TestScheduler, Akka.TestKit\"\n{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}")
{
    private readonly FakeNftables nft = new();
    private readonly Conntrack conntrack = new();

    private static UInt128 V4(string ip) => (UInt128)BitConverter.ToUInt32(IPAddress.Parse(ip).GetAddressBytes().Reverse().ToArray());

    /// <summary>Review: the kernel holds an element up to a second past its expiry (its timeout is
    /// rounded up), and the sweep looked at the expiry itself; a flow opened in that second was
    /// never cut.</summary>
    [Fact]
    public void A_flow_opened_while_the_kernel_still_holds_an_expiring_dns_element_is_cut()
    {
        var scheduler = (TestScheduler)Sys.Scheduler;
        conntrack.Scheduler = scheduler;
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t",
            options: new WriterOptions(false, null, new FlowCutter(conntrack, () => new HashSet<IPAddress>()))));
        writer.Tell(new ExpectOwners(ImmutableHashSet<string>.Empty), TestActor);
        AwaitCondition(() => nft.Transactions.Count > 0);
        var start = scheduler.Now;                 // the sweep runs at start + 2 s, + 4 s, ...

        scheduler.Advance(TimeSpan.FromSeconds(0.6));
        var at = scheduler.Now;                    // the writer commits at start + 0.6
        var until = at.AddSeconds(27.2);           // a fractional expiry (e.g. a renewal's)
        var (c, d) = (V4("198.18.128.2"), V4("198.19.0.10"));
        var host = new Element("outh4", [new Field(FieldKind.Ipv4, c, c), new Field(FieldKind.Ipv4, d, d),
            new Field(FieldKind.Proto, 6, 6), new Field(FieldKind.Port, 0, 65535), new Field(FieldKind.Port, 443, 443)], expires: until);
        writer.Tell(new Program(new Fragment("a", [new Element("managed4", [new Field(FieldKind.Ipv4, c, c)]), host]), 1), TestActor);
        ExpectMsg<Applied>();
        var timeout = int.Parse(Regex.Match(nft.Transactions.Last(), "\"timeout\":(\\d+)").Groups[1].Value);
        var kernelLetsGo = at.AddSeconds(timeout);
        Assert.InRange(kernelLetsGo, until, until.AddSeconds(1)); // never before the writer stops counting on it

        // the container connects just before the kernel lets the element go
        while (scheduler.Now < kernelLetsGo.AddSeconds(-0.2))
        {
            scheduler.Advance(TimeSpan.FromSeconds(0.2));
            Thread.Sleep(10);
        }
        conntrack.Flows.Add(new ConntrackFlow(ConntrackFlow.Tcp,
            new FlowTuple(IPAddress.Parse("198.18.128.2"), IPAddress.Parse("198.19.0.10"), 40000, 443),
            new FlowTuple(IPAddress.Parse("198.19.0.10"), IPAddress.Parse("198.18.128.2"), 443, 40000), 0, 7));

        // a few sweeps later the flow is gone, and no sweep looked before the kernel let go
        for (var i = 0; i < 5 && conntrack.Deleted.IsEmpty; i++)
        {
            scheduler.Advance(TimeSpan.FromSeconds(2));
            Thread.Sleep(150);
        }
        Assert.Single(conntrack.Deleted);
        Assert.All(conntrack.ReadAt, read => Assert.True(read >= kernelLetsGo, $"a sweep read conntrack at {read:O}, before the kernel let go at {kernelLetsGo:O}"));
    }

    private sealed class Conntrack : IConntrack
    {
        public readonly ConcurrentBag<ConntrackFlow> Flows = [];
        public readonly ConcurrentQueue<ConntrackFlow> Deleted = new();
        public readonly ConcurrentQueue<DateTimeOffset> ReadAt = new();
        public TestScheduler? Scheduler;

        public IReadOnlyList<ConntrackFlow> FlowsOf(IReadOnlyCollection<IPAddress> addresses)
        {
            ReadAt.Enqueue(Scheduler!.Now);
            return [.. Flows.Where(f => addresses.Contains(f.Original.Source))];
        }

        public int Delete(IEnumerable<ConntrackFlow> flows)
        {
            var n = 0;
            foreach (var f in flows) { Deleted.Enqueue(f); n++; }
            return n;
        }
    }
}
