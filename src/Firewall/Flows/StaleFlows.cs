using System.Net;
using System.Net.Sockets;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Flows;

/// <summary>
/// Which tracked flows the table would no longer let start: for each flow, the lookups
/// WhaleWall's inet chains (docs/nftables.md) make for its first packet, answered from the
/// elements the kernel holds after a change. Pure. A flow that would now be dropped is stale:
/// delete its conntrack entry, so its next packet meets the rules. Removal is simpler: every
/// flow of a removed container's addresses goes (a reused address must inherit none).
/// <para>The first packet, as the forward/input hooks saw it (after DNAT, before SNAT): source
/// = original source, destination = reply source, ports likewise; for ICMP the "source port"
/// is type * 256 + code, as in the sets.</para>
/// <para>Conservative where the table decides outside the sets: a hit in a verdict map
/// (<c>outv*</c>, <c>pubv*</c>, <c>localv*</c>: a rule with a log prefix or verdict) counts as
/// allowed, so such flows are kept.</para>
/// </summary>
public static class StaleFlows
{
    /// <param name="flows">the flows of the container's addresses (<see cref="IConntrack.FlowsOf"/>)</param>
    /// <param name="hostAddresses">the host's own addresses (flows from them to a container went
    /// through the output hook: <c>from_host</c>)</param>
    /// <param name="table">every element in the kernel after the change (not only the container's:
    /// a <c>peer*</c> element that lets A reach B is A's)</param>
    public static IReadOnlyList<ConntrackFlow> NotAllowed(IEnumerable<ConntrackFlow> flows, IReadOnlySet<IPAddress> hostAddresses, ElementIndex table) =>
        flows.Where(f => !Allowed(f, hostAddresses, table)).ToList();

    public static bool Allowed(ConntrackFlow f, IReadOnlySet<IPAddress> hostAddresses, ElementIndex table)
    {
        var family = f.Original.Source.AddressFamily == AddressFamily.InterNetwork ? IpFamily.V4 : IpFamily.V6;
        var icmp = f.Protocol is ConntrackFlow.Icmp or ConntrackFlow.Icmpv6;
        var src = Addresses.ToNumber(f.Original.Source).Item2;
        var dst = Addresses.ToNumber(f.Reply.Source).Item2;
        UInt128 proto = f.Protocol;
        UInt128 sport = icmp ? f.Original.DestinationPort : f.Original.SourcePort;
        UInt128 dport = icmp ? 0u : f.Reply.SourcePort;
        bool Managed(UInt128 a) => table.Contains(NftSets.Managed(family), a);
        bool In(string set, params UInt128[] key) => table.Contains(set, key);

        // a proxied container's query, redirected to the DNS proxy: the proxy's guard chain
        // allows it (not the container's egress rules), as long as the container stays proxied
        if (f.Protocol is ConntrackFlow.Tcp or ConntrackFlow.Udp && f.Original.DestinationPort == 53 && f.Dnat &&
            f.Reply.SourcePort == NftLayout.DnsProxyPort && In(NftSets.DnsProxy(family), src))
            return true;

        if (hostAddresses.Contains(f.Original.Source) && Managed(dst))
            return In(NftSets.Local(family), dst, proto, dport) || In(NftSets.LocalVerdict(family), dst, proto, dport);

        if (Managed(src) && !(In(NftSets.Out(family), src, dst, proto, sport, dport)
                              || In(NftSets.OutHosts(family), src, dst, proto, sport, dport)
                              || In(NftSets.OutVerdict(family), src, dst, proto, sport, dport)))
            return false;
        if (Managed(dst) && !hostAddresses.Contains(f.Reply.Source) && !(In(NftSets.Peer(family), src, dst, proto, sport, dport)
                              || In(NftSets.In(family), src, dst, proto, dport)
                              || (f.Dnat && (In(NftSets.Pub(family), src, dst, proto, dport) || In(NftSets.PubVerdict(family), src, dst, proto, dport)))))
            return false;
        return true;
    }
}

/// <summary>The kernel's elements by set, for membership questions (each field an interval).
/// Linear in the set's size per question: fine for the flows of one container; the writer can
/// narrow it to the elements that start with, or contain, the container's addresses.</summary>
public sealed class ElementIndex
{
    private readonly Dictionary<string, List<Element>> _bySet;

    public ElementIndex(IEnumerable<Element> elements) =>
        _bySet = elements.GroupBy(e => e.Set).ToDictionary(g => g.Key, g => g.ToList());

    public bool Contains(string set, params UInt128[] key)
    {
        if (!_bySet.TryGetValue(set, out var elements)) return false;
        foreach (var e in elements)
        {
            if (e.Fields.Length != key.Length) continue;
            var hit = true;
            for (var i = 0; i < key.Length && hit; i++) hit = e.Fields[i].Lo <= key[i] && key[i] <= e.Fields[i].Hi;
            if (hit) return true;
        }
        return false;
    }
}
