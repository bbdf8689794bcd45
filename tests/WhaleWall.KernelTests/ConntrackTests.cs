using System.Net;
using System.Text;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Kernel.Netlink;
using WhaleWall.TestSupport;
using Xunit;
using static WhaleWall.KernelTests.RawNft;

namespace WhaleWall.KernelTests;

/// <summary>The ctnetlink adapter against the real kernel: a TCP flow through the router
/// namespace of a <see cref="KernelLab"/> under WhaleWall-like rules (established accepted,
/// new flows only through an allow set).</summary>
public sealed class ConntrackTests
{
    private static readonly TimeSpan Passes = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Dropped = TimeSpan.FromSeconds(1.5);

    private static (string Set, JsonNodeElement Element) InstallRules(KernelLab lab, string family, string client, string server, int port)
    {
        var (set, types) = family == "ip"
            ? ("allow4", new[] { "ipv4_addr", "ipv4_addr", "inet_proto", "inet_service" })
            : ("allow6", new[] { "ipv6_addr", "ipv6_addr", "inet_proto", "inet_service" });
        var element = Concat(client, server, "tcp", port);
        var r = lab.Nft.Run(Batch(
            AddTable("ww"),
            AddConcatSet("ww", set, types, "interval"),
            AddBaseChain("ww", "forward", "forward"),
            AddRule("ww", "forward", CtEstablishedAccept()),
            AddRule("ww", "forward", LookupSaddrDaddrProtoDport(family, set), Verdict("accept")),
            AddRule("ww", "forward", Verdict("drop")),
            AddElements("ww", set, element)));
        Assert.True(r.Ok, r.Error);
        return (set, new JsonNodeElement(Concat(client, server, "tcp", port)));
    }

    /// <summary>A JSON element, re-creatable (a JsonNode has one parent).</summary>
    private sealed record JsonNodeElement(System.Text.Json.Nodes.JsonNode Node)
    {
        public System.Text.Json.Nodes.JsonNode Fresh() => System.Text.Json.Nodes.JsonNode.Parse(Node.ToJsonString())!;
    }

    [Theory]
    [InlineData("ip", KernelLab.ClientIp4, KernelLab.ServerIp4)]
    [InlineData("ip6", KernelLab.ClientIp6, KernelLab.ServerIp6)]
    public void A_flow_whose_allow_element_is_gone_passes_until_its_entry_is_deleted(string family, string client, string server)
    {
        using var lab = new KernelLab();
        using var sink = TcpSink.Start(lab.ServerNs, server, 80);
        var (set, element) = InstallRules(lab, family, client, server, 80);
        using var conntrack = new Conntrack(lab.RouterNs);

        using var flow = TcpSink.Connect(lab.ClientNs, server, 80);
        flow.Send(Encoding.ASCII.GetBytes("allowed\n"));
        Assert.True(sink.WaitFor(8, Passes));

        // the policy changes: the allow element goes away
        var removed = lab.Nft.Run(Batch(DeleteElements("ww", set, element.Fresh())));
        Assert.True(removed.Ok, removed.Error);

        // without deleting the entry, the established flow goes on as if nothing changed
        flow.Send(Encoding.ASCII.GetBytes("stale!\n"));
        Assert.True(sink.WaitFor(15, Passes), "the established flow should still pass before its entry is deleted");

        var flows = conntrack.FlowsOf(IPAddress.Parse(client));
        var entry = Assert.Single(flows, f => f.Protocol == ConntrackFlow.Tcp && f.Original.DestinationPort == 80);
        Assert.Equal(IPAddress.Parse(server), entry.Original.Destination);
        Assert.Equal(IPAddress.Parse(server), entry.Reply.Source);
        Assert.False(entry.Dnat);
        Assert.Equal(1, conntrack.Delete([entry]));

        // the next packets of the flow are new to conntrack, meet the rules and are dropped
        flow.Send(Encoding.ASCII.GetBytes("after\n"));
        Assert.False(sink.WaitFor(16, Dropped), "the flow's next packets must be dropped once its entry is deleted");
        Assert.Equal(15, sink.Received);
        // and deleting it again finds nothing
        Assert.Equal(0, conntrack.Delete([entry]));
    }

    /// <summary>Both ways of reading the table: one dump of the family matched here (a small
    /// table), and filtered dumps per address and direction (a table too big to carry whole).</summary>
    [Theory]
    [InlineData(KernelLab.ClientIp4, "198.18.10.3", KernelLab.ServerIp4, false)]
    [InlineData(KernelLab.ClientIp4, "198.18.10.3", KernelLab.ServerIp4, true)]
    [InlineData(KernelLab.ClientIp6, "2001:db8:10::3", KernelLab.ServerIp6, false)]
    public void Flows_of_an_address_are_those_it_opened_or_answers_and_no_others(string client, string otherClient, string server, bool filtered)
    {
        using var lab = new KernelLab();
        var prefix = client.Contains(':') ? "/64" : "/24";
        lab.Ip(lab.ClientName, client.Contains(':') ? "-6" : "-4", "addr", "add", otherClient + prefix, "dev", KernelLab.ClientIf, "nodad");
        using var sink = TcpSink.Start(lab.ServerNs, server, 80);
        using var conntrack = new Conntrack(lab.RouterNs, entriesPerWalk: filtered ? 0 : 2048);
        // a table that uses conntrack: without one the namespace tracks nothing
        var tracked = lab.Nft.Run(Batch(AddTable("ww"), AddBaseChain("ww", "forward", "forward"), AddRule("ww", "forward", CtEstablishedAccept())));
        Assert.True(tracked.Ok, tracked.Error);

        using var mine = TcpSink.Connect(lab.ClientNs, server, 80, sourceIp: client);
        using var theirs = TcpSink.Connect(lab.ClientNs, server, 80, sourceIp: otherClient);

        // what decides between the two ways: the namespace's entry count, from the kernel
        Assert.True(conntrack.Entries() >= 2, $"entries: {conntrack.Entries()}");
        var flows = conntrack.FlowsOf(IPAddress.Parse(client));
        var only = Assert.Single(flows.Where(f => f.Protocol == ConntrackFlow.Tcp));
        Assert.Equal(((IPEndPoint)mine.LocalEndPoint!).Port, only.Original.SourcePort);

        // the server answers both: it is the reply source of both entries
        var served = conntrack.FlowsOf(IPAddress.Parse(server)).Where(f => f.Protocol == ConntrackFlow.Tcp).ToList();
        Assert.Equal(2, served.Count);
        Assert.All(served, f => Assert.Equal(IPAddress.Parse(server), f.Reply.Source));

        // asked together: each address' own, once
        var both = conntrack.FlowsOf([IPAddress.Parse(client), IPAddress.Parse(otherClient)]).Where(f => f.Protocol == ConntrackFlow.Tcp).ToList();
        Assert.Equal(2, both.Count);
        Assert.Equal(new[] { client, otherClient }.Select(IPAddress.Parse).ToHashSet(), both.Select(f => f.Original.Source).ToHashSet());

        // deleting one leaves the other
        Assert.Equal(1, conntrack.Delete([only]));
        Assert.Empty(conntrack.FlowsOf(IPAddress.Parse(client)).Where(f => f.Protocol == ConntrackFlow.Tcp));
        Assert.Single(conntrack.FlowsOf(IPAddress.Parse(otherClient)).Where(f => f.Protocol == ConntrackFlow.Tcp));
    }
}
