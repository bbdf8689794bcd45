using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Kernel.Netlink;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>Audit mode in the real kernel: WhaleWall's whole table in a <see cref="KernelLab"/>
/// router, real packets, the audit counter, and conntrack's new-flow events (the adapter the
/// flow recorder reads) carrying the audit mark of a would-be drop and none for an allowed flow.</summary>
public sealed class AuditModeTests
{
    private const string Table = "whalewall";

    private static ContainerFacts Client(string mode) => new("client", "client", true, new Dictionary<string, string>
        {
            [LabelKeys.Enabled] = "true",
            [LabelKeys.Mode] = mode,
            [LabelKeys.Rules] = $"output:\n  - ips: [{KernelLab.ServerIp4}, {KernelLab.ServerIp6}]\n    proto: tcp\n    dst_ports: [80]\n",
        }.ToImmutableDictionary(),
        [new NetworkAttachment("lab", "lab", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6))], []);

    private static void Apply(KernelLab lab, ContainerFacts facts)
    {
        var decision = ContainerDecider.Decide(DecisionContext.Default, facts);
        var fragment = Compiler.Compile(facts, decision.Policy, [], audit: decision.Mode == PolicyMode.Audit).Fragment;
        var result = lab.Nft.Run(NftJson.FullTable(Table, fragment.Elements));
        Assert.True(result.Ok, result.Error);
    }

    private static ulong AuditCounter(KernelLab lab, string set)
    {
        var listing = lab.Nft.Run(NftJson.ListSet(Table, set));
        Assert.True(listing.Ok, listing.Error);
        return NftCounters.Read(listing.Output).Where(c => c.Verdict == CountedVerdict.AuditDrop).Aggregate(0UL, (n, c) => n + c.Packets);
    }

    [Fact]
    public void A_would_be_drop_of_an_audited_container_passes_is_counted_and_its_flow_carries_the_audit_mark()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        using var s81 = TcpServer.Start(lab.ServerNs, "::", 81);
        using var events = new ConntrackEvents(lab.RouterNs);
        Apply(lab, Client("audit"));

        foreach (var server in new[] { KernelLab.ServerIp4, KernelLab.ServerIp6 })
        {
            Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, server, 80));
            var outcome = Probe.Tcp(lab.ClientNs, server, 81, TimeSpan.FromSeconds(2));
            Assert.True(outcome == ProbeOutcome.Connected, $"audit mode must pass a would-be drop ({server}): {outcome}\n{lab.Exec(lab.RouterName, "nft", "list", "ruleset")}");
        }
        Assert.True(AuditCounter(lab, "auditout4") >= 1, "IPv4 would-be drop counted");
        Assert.True(AuditCounter(lab, "auditout6") >= 1, "IPv6 would-be drop counted");

        var seen = new List<NewFlow>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (DateTime.UtcNow < deadline && seen.Count(f => f.Flow.Protocol == ConntrackFlow.Tcp) < 4)
            Assert.True(events.Read(TimeSpan.FromMilliseconds(200), seen), "no event lost");
        var tcp = seen.Where(f => f.Flow.Protocol == ConntrackFlow.Tcp && f.Flow.Original.Source.ToString() is KernelLab.ClientIp4 or KernelLab.ClientIp6).ToList();
        Assert.Equal(4, tcp.Count);
        Assert.All(tcp.Where(f => f.Flow.Original.DestinationPort == 81), f => Assert.True(f.AuditDrop, $"port 81 flow without the audit mark: {f}"));
        Assert.All(tcp.Where(f => f.Flow.Original.DestinationPort == 80), f => Assert.False(f.AuditDrop, $"allowed flow marked: {f}"));
    }

    [Fact]
    public void The_same_rules_in_enforce_mode_drop_it_and_nothing_is_counted_as_audit()
    {
        using var lab = new KernelLab();
        using var s81 = TcpServer.Start(lab.ServerNs, "::", 81);
        using var events = new ConntrackEvents(lab.RouterNs);
        Apply(lab, Client("enforce"));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 81, TimeSpan.FromSeconds(1)));
        Assert.Equal(0UL, AuditCounter(lab, "auditout4"));
        // a dropped packet never confirms a flow: no event for it
        var seen = new List<NewFlow>();
        events.Read(TimeSpan.FromMilliseconds(500), seen);
        Assert.DoesNotContain(seen, f => f.Flow.Protocol == ConntrackFlow.Tcp && f.Flow.Original.DestinationPort == 81);
    }
}
