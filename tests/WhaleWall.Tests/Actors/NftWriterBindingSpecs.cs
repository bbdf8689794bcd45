using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using System.Net.NetworkInformation;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Nft;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;
using static WhaleWall.Actors.Nft.NftWriterEvents;

namespace WhaleWall.Tests.Actors;

/// <summary>The writer with binding on (issue 13): both tables in one transaction, a reused
/// address's new owner gets its port only once the old owner is gone, and conntrack entries the
/// new rules no longer allow are deleted after each commit.</summary>
public class NftWriterBindingSpecs() : TestKit($"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}")
{
    private const string Mac = "02:42:c6:12:80:02";
    private readonly FakeNftables nft = new();
    private readonly FakeConntrack conntrack = new();

    private static Element Managed(string ip) => Single("managed4", ip);

    private static Element Single(string set, string ip)
    {
        var n = (UInt128)BitConverter.ToUInt32(IPAddress.Parse(ip).GetAddressBytes().Reverse().ToArray());
        return new(set, [new Field(FieldKind.Ipv4, n, n)]);
    }

    /// <summary>An out4 element: src . dst . proto . sport . dport (any ports).</summary>
    private static Element Out(string src, string dst)
    {
        var s = Single("x", src).Fields[0];
        var d = Single("x", dst).Fields[0];
        return new("out4", [s, d, new Field(FieldKind.Proto, 6, 6), new Field(FieldKind.Port, 0, 65535), new Field(FieldKind.Port, 0, 65535)]);
    }

    private const string AddsPort = "{\"add\":{\"element\":{\"family\":\"bridge\",\"table\":\"t\",\"name\":\"port4\"";

    private static Fragment Bound(string owner, string ip, int? port, params Element[] allows) =>
        new(owner, [Managed(ip), .. allows], [],
            [.. BridgeLayout.Elements(PortBinding.Of(port, PhysicalAddress.Parse(Mac), IPAddress.Parse(ip), null)).Order()]);

    private IActorRef StartedWriter()
    {
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t", options: new WriterOptions(true, null, new FlowCutter(conntrack, () => new HashSet<IPAddress>()))));
        writer.Tell(new ExpectOwners(ImmutableHashSet<string>.Empty));
        AwaitCondition(() => nft.Transactions.Any(t => t.Contains("\"flush\"") && t.Contains("\"bridge\""))); // after the raw set declarations
        return writer;
    }

    [Fact]
    public void A_containers_inet_and_bridge_elements_go_in_one_transaction()
    {
        var writer = StartedWriter();
        writer.Tell(new Program(Bound("a", "198.18.128.2", 7), 1));
        ExpectMsg(new Applied("a", 1));
        var last = nft.Transactions.Last();
        Assert.Contains("\"family\":\"inet\"", last);
        Assert.Contains("\"family\":\"bridge\"", last);
        Assert.Contains("\"port4\"", last);
    }

    [Fact]
    public void A_reused_address_opens_its_new_port_only_after_the_old_owner_is_gone()
    {
        var writer = StartedWriter();
        writer.Tell(new Program(Bound("old", "198.18.128.2", 7, Out("198.18.128.2", "198.19.0.10")), 1));
        ExpectMsg(new Applied("old", 1));

        // Docker gave the address to a new container on port 9 before the old one's removal landed
        var before = nft.Transactions.Count;
        writer.Tell(new Program(Bound("new", "198.18.128.2", 9), 1));
        ExpectMsg(new Applied("new", 1));
        // owned only (shared with the old owner: nothing to add): its frames are dropped
        Assert.DoesNotContain(nft.Transactions.Skip(before), t => t.Contains(AddsPort));

        before = nft.Transactions.Count;
        writer.Tell(new Program(Fragment.Empty("old"), 2));
        ExpectMsg(new Applied("old", 2));
        AwaitCondition(() => nft.Transactions.Skip(before).Any(t => t.Contains(AddsPort)));
        var removal = nft.Transactions.Skip(before).First();
        var opened = nft.Transactions.Skip(before).First(t => t.Contains(AddsPort));
        Assert.NotSame(removal, opened); // a later transaction: after the old owner's flows were cut
        Assert.Contains("198.18.128.2", conntrack.Asked);
    }

    [Fact]
    public void A_removed_containers_flows_all_go_and_a_narrowed_policy_cuts_only_what_it_no_longer_allows()
    {
        var writer = StartedWriter();
        var a = "198.18.128.2";
        conntrack.Flows[a] = [Flow(a, "198.19.0.10", 1), Flow(a, "198.19.0.11", 2)];
        writer.Tell(new Program(Bound("a", a, 7, Out(a, "198.19.0.10"), Out(a, "198.19.0.11")), 1));
        ExpectMsg(new Applied("a", 1));
        Assert.Empty(conntrack.Deleted); // widening cuts nothing

        writer.Tell(new Program(Bound("a", a, 7, Out(a, "198.19.0.10")), 2));
        ExpectMsg(new Applied("a", 2));
        AwaitCondition(() => conntrack.Deleted.Count == 1);
        Assert.Equal(2u, conntrack.Deleted.Single().Id); // the flow to .11, no longer allowed

        writer.Tell(new Program(Fragment.Empty("a"), 3));
        ExpectMsg(new Applied("a", 3));
        AwaitCondition(() => conntrack.Deleted.Count == 3); // removal: every flow of its address
    }

    [Fact]
    public void A_flow_allowed_only_by_a_dns_address_is_cut_once_the_kernel_times_that_address_out()
    {
        var writer = StartedWriter();
        var a = "198.18.128.2";
        conntrack.Flows[a] = [Flow(a, "198.19.0.10", 1), Flow(a, "198.19.0.12", 2)];
        var expires = Sys.Scheduler.Now.AddSeconds(1);
        var byName = Out(a, "198.19.0.10");
        var hostElement = new Element("outh4", byName.Fields, expires: expires);
        writer.Tell(new Program(Bound("a", a, 7, hostElement, Out(a, "198.19.0.12")), 1));
        ExpectMsg(new Applied("a", 1));
        Assert.Empty(conntrack.Deleted);

        // no Program arrives: the kernel drops the element by its timeout, the writer knows when
        AwaitCondition(() => conntrack.Deleted.Count == 1, TimeSpan.FromSeconds(8));
        Assert.Equal(1u, conntrack.Deleted.Single().Id);
    }

    private static ConntrackFlow Flow(string src, string dst, uint id) =>
        new(ConntrackFlow.Tcp,
            new FlowTuple(IPAddress.Parse(src), IPAddress.Parse(dst), 40000, 80),
            new FlowTuple(IPAddress.Parse(dst), IPAddress.Parse(src), 80, 40000), 0, id);

    private sealed class FakeConntrack : IConntrack
    {
        public ConcurrentDictionary<string, List<ConntrackFlow>> Flows { get; } = new();
        public ConcurrentQueue<ConntrackFlow> Deleted { get; } = new();
        public ConcurrentQueue<string> Asked { get; } = new();

        public IReadOnlyList<ConntrackFlow> FlowsOf(IReadOnlyCollection<IPAddress> addresses)
        {
            foreach (var address in addresses) Asked.Enqueue(address.ToString());
            return [.. addresses.SelectMany(a => Flows.TryGetValue(a.ToString(), out var f) ? f : []).Distinct()];
        }

        public int Delete(IEnumerable<ConntrackFlow> flows)
        {
            var n = 0;
            foreach (var f in flows) { Deleted.Enqueue(f); n++; }
            return n;
        }
    }
}
