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
public class NftWriterBindingSpecs : TestKit
{
    private const string Mac = "02:42:c6:12:80:02";
    private readonly FakeNftables nft = new();
    private readonly FakeConntrack conntrack;

    public NftWriterBindingSpecs() : base($"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}") =>
        conntrack = new FakeConntrack { Nft = nft };

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

    private IActorRef StartedWriter(TimeSpan? cutPatience = null, TimeSpan? removalCutPatience = null)
    {
        var options = new WriterOptions(true, null, new FlowCutter(conntrack, () => new HashSet<IPAddress>()));
        if (cutPatience is { } patience) options = options with { CutPatience = patience };
        if (removalCutPatience is { } removals) options = options with { RemovalCutPatience = removals };
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t", options: options));
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
        Assert.InRange(conntrack.TransactionsAtFirstRead, 0, nft.Transactions.ToList().IndexOf(opened));
    }

    [Fact]
    public void A_reused_address_never_inherits_a_flow_whose_cut_was_still_waiting()
    {
        var writer = StartedWriter(removalCutPatience: TimeSpan.FromSeconds(30)); // only the new owner makes it due
        var ip = "198.18.128.2";
        conntrack.Flows[ip] = [Flow(ip, "198.19.0.10", 1)];
        writer.Tell(new Program(new Fragment("old", [Managed(ip), Out(ip, "198.19.0.10")], [], []), 1));
        ExpectMsg(new Applied("old", 1));

        // the old owner's removal is in the kernel, its cut waits; the address's next owner arrives meanwhile
        using var hold = new ManualResetEventSlim(false);
        nft.Hold = hold;
        var begun = nft.Begun;
        writer.Tell(new Program(Fragment.Empty("old"), 2));
        AwaitCondition(() => nft.Begun > begun);
        writer.Tell(new Program(new Fragment("new", [Managed(ip)], [], []), 1));
        nft.Hold = null;
        hold.Set();

        Assert.Equal(["new", "old"], ReceiveN(2).Cast<Applied>().Select(a => a.Owner).Order());
        var added = nft.Transactions.ToList().FindLastIndex(t => t.Contains("\"add\"") && t.Contains("managed4"));
        Assert.Equal(1u, conntrack.Deleted.Single().Id);
        Assert.InRange(conntrack.TransactionsAtFirstRead, 0, added); // read before the new owner's rules went in
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
    public void A_running_container_that_leaves_a_network_loses_every_flow_of_that_address_and_keeps_the_others()
    {
        var writer = StartedWriter();
        const string a1 = "198.18.128.2", a2 = "198.18.129.2";
        conntrack.Flows[a1] = [Flow(a1, "198.19.0.10", 1)];
        conntrack.Flows[a2] = [Flow(a2, "198.19.0.10", 2)];
        writer.Tell(new Program(new Fragment("a", [Managed(a1), Managed(a2), Out(a1, "198.19.0.10"), Out(a2, "198.19.0.10")], [], []), 1));
        ExpectMsg(new Applied("a", 1));

        // disconnected from a2's network: a2 is nobody's now (no rule looks at it), and Docker may
        // hand it to another container, which must not inherit a's established flow
        writer.Tell(new Program(new Fragment("a", [Managed(a1), Out(a1, "198.19.0.10")], [], []), 2));
        ExpectMsg(new Applied("a", 2));
        AwaitCondition(() => !conntrack.Deleted.IsEmpty);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(2u, Assert.Single(conntrack.Deleted).Id); // a1's flow is still allowed
    }

    [Fact]
    public void A_removal_that_only_a_rebuild_of_the_table_applied_still_cuts_the_containers_flows()
    {
        var writer = StartedWriter(removalCutPatience: TimeSpan.FromMilliseconds(100));
        const string ip = "198.18.128.2";
        conntrack.Flows[ip] = [Flow(ip, "198.19.0.10", 1)];
        writer.Tell(new Program(new Fragment("old", [Managed(ip), Out(ip, "198.19.0.10")], [], []), 1));
        ExpectMsg(new Applied("old", 1));

        // the kernel refuses the removal once: the writer rebuilds the whole table without it
        var refused = 0;
        nft.Refuse = json => json.Contains("{\"delete\":{\"element\"") && Interlocked.Exchange(ref refused, 1) == 0;
        writer.Tell(new Program(Fragment.Empty("old"), 2));
        ExpectMsg(new Applied("old", 2), TimeSpan.FromSeconds(5));
        Assert.Equal(1, refused);
        AwaitCondition(() => conntrack.Deleted.Count == 1, TimeSpan.FromSeconds(5));
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

    [Fact]
    public void Removals_that_queued_together_share_one_read_of_conntrack_after_the_changes_behind_them()
    {
        var writer = StartedWriter(removalCutPatience: TimeSpan.FromSeconds(1));
        foreach (var (owner, ip) in new[] { ("a", "198.18.128.2"), ("b", "198.18.128.3"), ("c", "198.18.128.4") })
        {
            conntrack.Flows[ip] = [Flow(ip, "198.19.0.10", (uint)ip[^1])];
            writer.Tell(new Program(new Fragment(owner, [Managed(ip), Out(ip, "198.19.0.10")], [], []), 1));
            ExpectMsg(new Applied(owner, 1));
        }
        Assert.Empty(conntrack.Asked); // additions have no flows to cut

        // the writer is in the kernel with a's removal while b's and c's removals and d's addition arrive
        using var hold = new ManualResetEventSlim(false);
        nft.Hold = hold;
        var begun = nft.Begun;
        writer.Tell(new Program(Fragment.Empty("a"), 2));
        AwaitCondition(() => nft.Begun > begun);
        writer.Tell(new Program(Fragment.Empty("b"), 2));
        writer.Tell(new Program(Fragment.Empty("c"), 2));
        writer.Tell(new Program(new Fragment("d", [Managed("198.18.128.5")], [], []), 1));
        nft.Hold = null;
        hold.Set();

        var answered = ReceiveN(4).Cast<Applied>().Select(a => a.Owner).Order().ToList();
        Assert.Equal(["a", "b", "c", "d"], answered);
        AwaitCondition(() => conntrack.Deleted.Count == 3, TimeSpan.FromSeconds(10)); // every flow of the three removed addresses
        Assert.Equal(1, conntrack.Reads);
        var dAdded = nft.Transactions.ToList().FindIndex(t => t.Contains("198.18.128.5"));
        Assert.True(dAdded >= 0 && conntrack.TransactionsAtFirstRead > dAdded, "d's addition did not wait for the read");
        Assert.Equal(["198.18.128.2", "198.18.128.3", "198.18.128.4"], conntrack.Asked.Order());
    }

    [Fact]
    public void A_narrowed_containers_flows_are_cut_at_once_a_removed_ones_within_its_patience()
    {
        var writer = StartedWriter(removalCutPatience: TimeSpan.FromSeconds(2));
        var a = "198.18.128.2";
        var b = "198.18.128.3";
        conntrack.Flows[a] = [Flow(a, "198.19.0.10", 1), Flow(a, "198.19.0.11", 2)];
        conntrack.Flows[b] = [Flow(b, "198.19.0.10", 3)];
        writer.Tell(new Program(new Fragment("a", [Managed(a), Out(a, "198.19.0.10"), Out(a, "198.19.0.11")], [], []), 1));
        writer.Tell(new Program(new Fragment("b", [Managed(b), Out(b, "198.19.0.10")], [], []), 1));
        ReceiveN(2);

        var removed = System.Diagnostics.Stopwatch.StartNew();
        writer.Tell(new Program(Fragment.Empty("b"), 2));
        ExpectMsg(new Applied("b", 2));
        writer.Tell(new Program(new Fragment("a", [Managed(a), Out(a, "198.19.0.10")], [], []), 2)); // the flow to .11 is no longer allowed
        ExpectMsg(new Applied("a", 2));
        AwaitCondition(() => conntrack.Deleted.Count == 2, TimeSpan.FromSeconds(1)); // the narrowing made it due: both go at once
        Assert.True(removed.Elapsed < TimeSpan.FromSeconds(2), "cut before the removal's patience ran out");
        Assert.Equal([2u, 3u], conntrack.Deleted.Select(f => f.Id).Order());

        writer.Tell(new Program(new Fragment("c", [Managed("198.18.128.4")], [], []), 1));
        ExpectMsg(new Applied("c", 1));
        conntrack.Flows["198.18.128.4"] = [Flow("198.18.128.4", "198.19.0.10", 4)];
        var reads = conntrack.Reads;
        removed.Restart();
        writer.Tell(new Program(Fragment.Empty("c"), 2));
        ExpectMsg(new Applied("c", 2));
        AwaitCondition(() => conntrack.Deleted.Count == 3, TimeSpan.FromSeconds(10));
        Assert.True(removed.Elapsed >= TimeSpan.FromSeconds(1.5), $"a removal alone waits its patience ({removed.Elapsed.TotalMilliseconds:0} ms)");
        Assert.Equal(reads + 1, conntrack.Reads);
    }

    [Fact]
    public void A_widening_does_not_make_the_removals_cut_due_early()
    {
        var writer = StartedWriter(removalCutPatience: TimeSpan.FromSeconds(3));
        var a = "198.18.128.2";
        var b = "198.18.128.3";
        conntrack.Flows[b] = [Flow(b, "198.19.0.10", 1)];
        writer.Tell(new Program(new Fragment("a", [Managed(a), Out(a, "198.19.0.10")], [], []), 1));
        writer.Tell(new Program(new Fragment("b", [Managed(b), Out(b, "198.19.0.10")], [], []), 1));
        ReceiveN(2);

        writer.Tell(new Program(Fragment.Empty("b"), 2));
        ExpectMsg(new Applied("b", 2));
        writer.Tell(new Program(new Fragment("a", [Managed(a), Out(a, "198.19.0.10"), Out(a, "198.19.0.11")], [], []), 2));
        ExpectMsg(new Applied("a", 2));
        Thread.Sleep(1000);
        Assert.Equal(0, conntrack.Reads); // the widening cut nothing and left the removal to its patience
        AwaitCondition(() => conntrack.Deleted.Count == 1, TimeSpan.FromSeconds(10));
        Assert.Equal(1, conntrack.Reads);
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

        public int Reads => reads;
        private int reads;
        /// <summary>How many transactions the writer had committed when conntrack was first read.</summary>
        public int TransactionsAtFirstRead { get; private set; } = -1;
        public FakeNftables? Nft { get; init; }

        public IReadOnlyList<ConntrackFlow> FlowsOf(IReadOnlyCollection<IPAddress> addresses)
        {
            if (Interlocked.Increment(ref reads) == 1) TransactionsAtFirstRead = Nft?.Transactions.Count ?? -1;
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
