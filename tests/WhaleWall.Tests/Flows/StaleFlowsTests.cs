using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Flows;

/// <summary>Which conntrack entries a policy change leaves without a rule: the lookups of the
/// inet chains for a flow's first packet, as a table of flows that must and must not go.</summary>
public sealed class StaleFlowsTests
{
    private const string A = "198.18.30.2", B = "198.18.30.3", U = "198.18.30.9", Gateway = "198.18.30.1", Host = "198.18.1.1";
    private const string Server = "198.19.0.10", Client = "198.19.0.20";
    private static readonly IReadOnlySet<IPAddress> HostAddresses = new HashSet<IPAddress> { IPAddress.Parse(Gateway), IPAddress.Parse(Host) };

    private static Field Ip(string a) { var n = Addresses.ToNumber(IPAddress.Parse(a)).Item2; return new(FieldKind.Ipv4, n, n); }
    private static readonly Field AnyIp = new(FieldKind.Ipv4, 0, uint.MaxValue);
    private static Field Proto(byte p) => new(FieldKind.Proto, p, p);
    private static Field Port(int lo, int? hi = null) => new(FieldKind.Port, (UInt128)lo, (UInt128)(hi ?? lo));
    private static readonly Field AnyPort = Port(0, 65535);
    private static Element E(string set, params Field[] fields) => new(set, [.. fields]);

    /// <summary>A (managed): tcp/80 to the server, echo requests to it; B's `container:` rule lets
    /// B reach A on 5432; A publishes 8080; the host may reach A's 9000. B is managed too.</summary>
    private static List<Element> Table() =>
    [
        E("managed4", Ip(A)), E("managed4", Ip(B)),
        E("out4", Ip(A), Ip(Server), Proto(6), AnyPort, Port(80)),
        E("out4", Ip(A), Ip(Server), Proto(1), Port(8 * 256, 8 * 256 + 255), AnyPort),
        E("out4", Ip(B), Ip(A), Proto(6), AnyPort, Port(5432)),
        E("peer4", Ip(B), Ip(A), Proto(6), AnyPort, Port(5432)),
        E("pub4", AnyIp, Ip(A), Proto(6), Port(8080)),
        E("local4", Ip(A), Proto(6), Port(9000)),
        E("dnsproxy4", Ip(A)),
    ];

    private static ConntrackFlow Flow(byte proto, string src, int sport, string dst, int dport, string? replySrc = null, int? replySport = null, string? replyDst = null) =>
        new(proto, new FlowTuple(IPAddress.Parse(src), IPAddress.Parse(dst), (ushort)sport, (ushort)dport),
            new FlowTuple(IPAddress.Parse(replySrc ?? dst), IPAddress.Parse(replyDst ?? src), (ushort)(replySport ?? dport), (ushort)sport));

    public static TheoryData<string, ConntrackFlow, bool> Cases() => new()
    {
        { "A to the server's allowed port", Flow(6, A, 40000, Server, 80), true },
        { "A to another port", Flow(6, A, 40000, Server, 81), false },
        { "A masqueraded to the server (SNAT changes only the reply)", Flow(6, A, 40000, Server, 80, replyDst: Host), true },
        { "A's echo request", new ConntrackFlow(1, new FlowTuple(IPAddress.Parse(A), IPAddress.Parse(Server), 7, 8 << 8), new FlowTuple(IPAddress.Parse(Server), IPAddress.Parse(A), 7, 0)), true },
        { "A's timestamp request", new ConntrackFlow(1, new FlowTuple(IPAddress.Parse(A), IPAddress.Parse(Server), 7, 13 << 8), new FlowTuple(IPAddress.Parse(Server), IPAddress.Parse(A), 7, 14 << 8)), false },
        { "B to A where B's rule names A", Flow(6, B, 40000, A, 5432), true },
        { "B to another port of A", Flow(6, B, 40000, A, 22), false },
        { "a client through A's published port (DNAT)", Flow(6, Client, 50000, Host, 18080, replySrc: A, replySport: 8080), true },
        { "the same client straight to A's port, no DNAT", Flow(6, Client, 50000, A, 8080), false },
        { "the host to A's allowed local port", Flow(6, Gateway, 50000, A, 9000), true },
        { "the host to another port of A", Flow(6, Gateway, 50000, A, 9001), false },
        { "an unmanaged container: not WhaleWall's to stop", Flow(6, U, 40000, Server, 443), true },
        { "A's DNS query redirected to the proxy (A is proxied)", Flow(17, A, 40000, "198.19.0.53", 53, replySrc: Gateway, replySport: 15353), true },
        { "A's DNS query over TCP redirected to the proxy", Flow(6, A, 40000, "198.19.0.53", 53, replySrc: Gateway, replySport: 15353), true },
        { "B's query redirected the same way, B not proxied", Flow(17, B, 40000, "198.19.0.53", 53, replySrc: Gateway, replySport: 15353), false },
        { "A's query to port 53 not redirected", Flow(17, A, 40000, "198.19.0.53", 53), false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_flow_is_stale_when_the_table_would_not_let_its_first_packet_through(string what, ConntrackFlow flow, bool allowed)
    {
        Assert.True(allowed == StaleFlows.Allowed(flow, HostAddresses, new ElementIndex(Table())), what);
    }

    [Fact]
    public void After_a_change_the_flows_its_new_elements_no_longer_allow_are_stale()
    {
        var web = Flow(6, A, 40000, Server, 80);
        var fromB = Flow(6, B, 40000, A, 5432);
        var published = Flow(6, Client, 50000, Host, 18080, replySrc: A, replySport: 8080);
        var before = Table();
        Assert.Empty(StaleFlows.NotAllowed([web, fromB, published], HostAddresses, new ElementIndex(before)));

        // A is re-created on the same address with a policy that only allows tcp/443
        var after = before.Where(e => !(e.Set == "out4" && e.Fields[0] == Ip(A)) && e.Set != "pub4").ToList();
        after.Add(E("out4", Ip(A), Ip(Server), Proto(6), AnyPort, Port(443)));
        Assert.Equal([web, published], StaleFlows.NotAllowed([web, fromB, published], HostAddresses, new ElementIndex(after)));
    }

    [Fact]
    public void A_verdict_map_hit_keeps_the_flow()
    {
        var table = Table();
        table.Add(new Element("outv4", [Ip(A), Ip(Server), Proto(6), AnyPort, Port(25)], target: "r_0123"));
        Assert.True(StaleFlows.Allowed(Flow(6, A, 40000, Server, 25), HostAddresses, new ElementIndex(table)));
    }
}
