using System.Text.Json.Nodes;
using WhaleWall.Firewall.Kernel;
using WhaleWall.TestSupport;
using Xunit;
using static WhaleWall.KernelTests.RawNft;

namespace WhaleWall.KernelTests;

/// <summary>Real packets through the router namespace, filtered by the docs/nftables.md layout
/// in miniature: forward { ct established accept; saddr . daddr . l4proto . dport @allow accept; drop }.</summary>
public sealed class ForwardPacketTests
{
    private static readonly TimeSpan Denied = TimeSpan.FromSeconds(1);

    private static void InstallAllowList(LibNftables nft, string family, string client, string server)
    {
        var (set, types) = family == "ip"
            ? ("allow4", new[] { "ipv4_addr", "ipv4_addr", "inet_proto", "inet_service" })
            : ("allow6", new[] { "ipv6_addr", "ipv6_addr", "inet_proto", "inet_service" });
        var r = nft.Run(Batch(
            AddTable("ww"),
            AddConcatSet("ww", set, types, "interval"),
            AddBaseChain("ww", "forward", "forward"),
            AddRule("ww", "forward", CtEstablishedAccept()),
            AddRule("ww", "forward", LookupSaddrDaddrProtoDport(family, set), Verdict("accept")),
            AddRule("ww", "forward", Counter(), Verdict("drop")),
            AddElements("ww", set,
                Concat(client, server, "tcp", 80),
                Concat(client, server, "udp", Range(5300, 5353)))));
        Assert.True(r.Ok, r.Error);
    }

    [Theory]
    [InlineData("ip", KernelLab.ClientIp4, KernelLab.ServerIp4)]
    [InlineData("ip6", KernelLab.ClientIp6, KernelLab.ServerIp6)]
    public void Allow_set_lets_allowed_tcp_through_and_drops_other_ports(string family, string client, string server)
    {
        using var lab = new KernelLab();
        using var http = TcpServer.Start(lab.ServerNs, server, 80);
        using var other = TcpServer.Start(lab.ServerNs, server, 81);

        // Without a firewall both ports answer.
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, server, 81));

        InstallAllowList(lab.Nft, family, client, server);

        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, server, 80));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, server, 81, Denied));
        Assert.Equal(1, http.Accepted);
        Assert.Equal(1, other.Accepted); // only the probe made before the firewall

        // The allowed element counted the connection's first packet (later ones are established).
        var set = Objects(lab.Nft.Run(Batch(ListSet("ww", family == "ip" ? "allow4" : "allow6"))).Output).Single()["set"]!;
        var tcp80 = set["elem"]!.AsArray().Single(e => e!["elem"]!["val"]!["concat"]![2]!.GetValue<string>() == "tcp")!;
        Assert.True((long)tcp80["elem"]!["counter"]!["packets"]! >= 1);
    }

    [Theory]
    [InlineData("ip", KernelLab.ClientIp4, KernelLab.ServerIp4)]
    [InlineData("ip6", KernelLab.ClientIp6, KernelLab.ServerIp6)]
    public void Allow_set_lets_allowed_udp_through_and_drops_other_ports(string family, string client, string server)
    {
        using var lab = new KernelLab();
        using var allowed = UdpEchoServer.Start(lab.ServerNs, server, 5353);
        using var denied = UdpEchoServer.Start(lab.ServerNs, server, 5354);

        InstallAllowList(lab.Nft, family, client, server);

        Assert.True(Probe.UdpEcho(lab.ClientNs, server, 5353));
        Assert.False(Probe.UdpEcho(lab.ClientNs, server, 5354, Denied));
        Assert.Equal(0, denied.Received);
        Assert.True(allowed.Received >= 1);
    }

    [Fact]
    public void Source_address_is_part_of_the_match()
    {
        using var lab = new KernelLab();
        // A second client address; the allow element names only the first one.
        lab.Ip(lab.ClientName, "addr", "add", "198.18.10.3/24", "dev", KernelLab.ClientIf);
        using var http = TcpServer.Start(lab.ServerNs, "0.0.0.0", 80);
        InstallAllowList(lab.Nft, "ip", KernelLab.ClientIp4, KernelLab.ServerIp4);

        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, sourceIp: KernelLab.ClientIp4));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, Denied, sourceIp: "198.18.10.3"));
    }

    [Fact]
    public void Dual_stack_servers_and_refused_ports_without_firewall()
    {
        using var lab = new KernelLab();
        using var tcp = TcpServer.Start(lab.ServerNs, "::", 8080);
        using var udp = UdpEchoServer.Start(lab.ServerNs, "::", 8053);

        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 8080));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp6, 8080));
        Assert.True(Probe.UdpEcho(lab.ClientNs, KernelLab.ServerIp4, 8053));
        Assert.True(Probe.UdpEcho(lab.ClientNs, KernelLab.ServerIp6, 8053));
        Assert.Equal(ProbeOutcome.Refused, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 8081));
        Assert.Equal(ProbeOutcome.Refused, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp6, 8081));
        Assert.Equal(2, tcp.Accepted);
        Assert.Equal(2, udp.Received);
    }
}
