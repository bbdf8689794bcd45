using System.Net;
using System.Net.Sockets;
using WhaleWall.Firewall.Flows;
using static WhaleWall.Firewall.Kernel.Netlink.NetlinkNative;

namespace WhaleWall.Firewall.Kernel.Netlink;

/// <summary>
/// <see cref="IConntrack"/> over ctnetlink (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_CTNETLINK):
/// a dump of the table (filtered by the kernel when that is cheaper: CTA_FILTER, Linux 5.8+; the
/// tuple is checked again here, so an older kernel that ignores the filter costs time, not
/// correctness), then one IPCTNL_MSG_CT_DELETE per entry, naming it by its original tuple, zone
/// and id, the way conntrack-tools' <c>conntrack -D -s ADDR</c> does. Needs CAP_NET_ADMIN.
/// </summary>
public sealed class Conntrack : IConntrack, IDisposable
{
    private const ushort NFNL_SUBSYS_CTNETLINK = 1;
    internal const ushort IPCTNL_MSG_CT_NEW = 0;
    private const ushort IPCTNL_MSG_CT_GET = 1, IPCTNL_MSG_CT_DELETE = 2, IPCTNL_MSG_CT_GET_STATS = 5;
    private const ushort CTA_STATS_GLOBAL_ENTRIES = 1;
    private const ushort CTA_TUPLE_ORIG = 1, CTA_TUPLE_REPLY = 2, CTA_ID = 12, CTA_ZONE = 18, CTA_FILTER = 25;
    private const ushort CTA_TUPLE_IP = 1, CTA_TUPLE_PROTO = 2;
    private const ushort CTA_IP_V4_SRC = 1, CTA_IP_V4_DST = 2, CTA_IP_V6_SRC = 3, CTA_IP_V6_DST = 4;
    private const ushort CTA_PROTO_NUM = 1, CTA_PROTO_SRC_PORT = 2, CTA_PROTO_DST_PORT = 3,
        CTA_PROTO_ICMP_ID = 4, CTA_PROTO_ICMP_TYPE = 5, CTA_PROTO_ICMP_CODE = 6,
        CTA_PROTO_ICMPV6_ID = 7, CTA_PROTO_ICMPV6_TYPE = 8, CTA_PROTO_ICMPV6_CODE = 9;
    private const ushort CTA_FILTER_ORIG_FLAGS = 1, CTA_FILTER_REPLY_FLAGS = 2;
    private const uint CTA_FILTER_F_CTA_IP_SRC = 1 << 0;

    private readonly NetlinkSocket _socket;

    private readonly long _entriesPerWalk;

    /// <param name="netnsPath">Tests only: the namespace whose table to use (default: this process's).</param>
    /// <param name="entriesPerWalk">Tests only: 0 makes every IPv4 read a pair of filtered dumps per address.</param>
    public Conntrack(string? netnsPath = null, long entriesPerWalk = EntriesPerWalk)
    {
        _socket = new NetlinkSocket(NETLINK_NETFILTER, netnsPath);
        _entriesPerWalk = entriesPerWalk;
    }

    public IReadOnlyList<ConntrackFlow> FlowsOf(IPAddress address) => FlowsOf([address]);

    /// <summary>Each dump walks the kernel's whole conntrack hash table (all namespaces' entries
    /// and every bucket: 262,144 buckets took ~8 ms here, with the table empty), so the dumps are
    /// few: one of each family, matched here, unless this namespace holds so many entries that
    /// carrying them all costs more than two filtered walks per IPv4 address (the kernel's filter
    /// takes one address and one direction). IPv6 is always one dump of the family: the kernel's
    /// IPv6 address filter is inverted (Linux 6.18 still returns the entries whose address
    /// differs: ctnetlink_filter_match_tuple tests !ipv6_addr_cmp).</summary>
    public IReadOnlyList<ConntrackFlow> FlowsOf(IReadOnlyCollection<IPAddress> addresses)
    {
        var wanted = addresses.ToHashSet();
        var flows = new Dictionary<(uint, ConntrackFlow), ConntrackFlow>();
        void Keep(IEnumerable<ConntrackFlow> dump)
        {
            foreach (var flow in dump)
                if (wanted.Contains(flow.Original.Source) || wanted.Contains(flow.Reply.Source))
                    flows[(flow.Id, flow)] = flow;
        }
        var v4 = wanted.Where(a => a.AddressFamily == AddressFamily.InterNetwork).ToList();
        if (v4.Count < wanted.Count) Keep(Dump(AddressFamily.InterNetworkV6, null, 0));
        if (v4.Count > 0)
        {
            if (Entries() is { } entries && entries <= _entriesPerWalk * (2L * v4.Count - 1))
                Keep(Dump(AddressFamily.InterNetwork, null, 0));
            else
                foreach (var address in v4)
                {
                    Keep(Dump(AddressFamily.InterNetwork, address, CTA_TUPLE_ORIG));
                    Keep(Dump(AddressFamily.InterNetwork, address, CTA_TUPLE_REPLY));
                }
        }
        return flows.Values.ToList();
    }

    /// <summary>Entries one walk is worth: what carrying and parsing that many entries of an
    /// unfiltered dump costs, roughly, against walking the hash table once more (conservative:
    /// a few microseconds per entry against ~8 ms per walk).</summary>
    private const long EntriesPerWalk = 2048;

    /// <summary>How many entries this namespace's table holds (IPCTNL_MSG_CT_GET_STATS), or
    /// null when the kernel does not say.</summary>
    public uint? Entries()
    {
        try
        {
            // the answer comes flagged NLM_F_MULTI without an NLMSG_DONE: the ACK ends it
            var request = new NetlinkRequest(Type(IPCTNL_MSG_CT_GET_STATS), NLM_F_REQUEST | NLM_F_ACK).Header(NfGen(AddressFamily.InterNetwork));
            foreach (var m in _socket.Exchange(request))
                if (m.Type == Type(IPCTNL_MSG_CT_GET_STATS) && m.Attributes(4).Be32(CTA_STATS_GLOBAL_ENTRIES) is { } entries)
                    return entries;
        }
        catch (NetlinkException) { }
        return null;
    }

    public int Delete(IEnumerable<ConntrackFlow> flows)
    {
        var deleted = 0;
        foreach (var flow in flows)
        {
            var family = Family(flow.Original.Source);
            var request = new NetlinkRequest(Type(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK).Header(NfGen(family));
            WriteTuple(request, CTA_TUPLE_ORIG, flow.Protocol, flow.Original);
            if (flow.Zone != 0) request.Be16(CTA_ZONE, flow.Zone);
            if (flow.Id != 0) request.Be32(CTA_ID, flow.Id);
            try
            {
                _socket.Exchange(request);
                deleted++;
            }
            catch (NetlinkException e) when (e.Errno == NetlinkException.ENOENT) { } // gone already, or a newer entry
        }
        return deleted;
    }

    /// <summary>A dump of <paramref name="family"/>; with an address and a direction, filtered by
    /// the kernel to the entries whose source in that direction is <paramref name="address"/>.</summary>
    private IEnumerable<ConntrackFlow> Dump(AddressFamily family, IPAddress? address, ushort direction)
    {
        var request = new NetlinkRequest(Type(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP).Header(NfGen(family));
        if (address is not null && direction != 0) Filter(request, address, direction);
        foreach (var m in _socket.Exchange(request))
            if (m.Type == Type(IPCTNL_MSG_CT_NEW) && Parse(m) is { } flow) yield return flow;
    }

    private static void Filter(NetlinkRequest request, IPAddress address, ushort direction)
    {
        var family = Family(address);
        var tuple = request.Begin(direction);
        var ip = request.Begin(CTA_TUPLE_IP);
        request.Attr(family == AddressFamily.InterNetwork ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, address.GetAddressBytes());
        request.End(ip);
        request.End(tuple);
        var filter = request.Begin(CTA_FILTER);
        request.U32(direction == CTA_TUPLE_ORIG ? CTA_FILTER_ORIG_FLAGS : CTA_FILTER_REPLY_FLAGS, CTA_FILTER_F_CTA_IP_SRC);
        request.End(filter);
    }

    internal static ConntrackFlow? Parse(NetlinkMessage m)
    {
        var a = m.Attributes(4);
        if (a.Nested(CTA_TUPLE_ORIG) is not { } orig || a.Nested(CTA_TUPLE_REPLY) is not { } reply) return null;
        if (ParseTuple(orig) is not { } o || ParseTuple(reply) is not { } r) return null;
        return new ConntrackFlow(o.Proto, o.Tuple, r.Tuple, a.Be16(CTA_ZONE) ?? 0, a.Be32(CTA_ID) ?? 0);
    }

    private static (byte Proto, FlowTuple Tuple)? ParseTuple(NetlinkAttributes t)
    {
        if (t.Nested(CTA_TUPLE_IP) is not { } ip || t.Nested(CTA_TUPLE_PROTO) is not { } proto) return null;
        var src = ip.Bytes(CTA_IP_V4_SRC) ?? ip.Bytes(CTA_IP_V6_SRC);
        var dst = ip.Bytes(CTA_IP_V4_DST) ?? ip.Bytes(CTA_IP_V6_DST);
        if (src is not { } s || dst is not { } d || (s.Length != 4 && s.Length != 16) || d.Length != s.Length) return null;
        var num = proto.U8(CTA_PROTO_NUM) ?? 0;
        ushort sport, dport;
        if (num == ConntrackFlow.Icmp)
            (sport, dport) = (proto.Be16(CTA_PROTO_ICMP_ID) ?? 0, (ushort)((proto.U8(CTA_PROTO_ICMP_TYPE) ?? 0) << 8 | (proto.U8(CTA_PROTO_ICMP_CODE) ?? 0)));
        else if (num == ConntrackFlow.Icmpv6)
            (sport, dport) = (proto.Be16(CTA_PROTO_ICMPV6_ID) ?? 0, (ushort)((proto.U8(CTA_PROTO_ICMPV6_TYPE) ?? 0) << 8 | (proto.U8(CTA_PROTO_ICMPV6_CODE) ?? 0)));
        else
            (sport, dport) = (proto.Be16(CTA_PROTO_SRC_PORT) ?? 0, proto.Be16(CTA_PROTO_DST_PORT) ?? 0);
        return (num, new FlowTuple(new IPAddress(s.Span), new IPAddress(d.Span), sport, dport));
    }

    private static void WriteTuple(NetlinkRequest request, ushort direction, byte protocol, FlowTuple tuple)
    {
        var v4 = tuple.Source.AddressFamily == AddressFamily.InterNetwork;
        var outer = request.Begin(direction);
        var ip = request.Begin(CTA_TUPLE_IP);
        request.Attr(v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, tuple.Source.GetAddressBytes());
        request.Attr(v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, tuple.Destination.GetAddressBytes());
        request.End(ip);
        var proto = request.Begin(CTA_TUPLE_PROTO);
        request.U8(CTA_PROTO_NUM, protocol);
        switch (protocol)
        {
            case ConntrackFlow.Icmp:
                request.Be16(CTA_PROTO_ICMP_ID, tuple.SourcePort);
                request.U8(CTA_PROTO_ICMP_TYPE, (byte)(tuple.DestinationPort >> 8));
                request.U8(CTA_PROTO_ICMP_CODE, (byte)tuple.DestinationPort);
                break;
            case ConntrackFlow.Icmpv6:
                request.Be16(CTA_PROTO_ICMPV6_ID, tuple.SourcePort);
                request.U8(CTA_PROTO_ICMPV6_TYPE, (byte)(tuple.DestinationPort >> 8));
                request.U8(CTA_PROTO_ICMPV6_CODE, (byte)tuple.DestinationPort);
                break;
            default:
                // TCP, UDP, SCTP, DCCP, UDP-Lite (and GRE's keys) travel as ports; protocols
                // without ports ignore them
                request.Be16(CTA_PROTO_SRC_PORT, tuple.SourcePort);
                request.Be16(CTA_PROTO_DST_PORT, tuple.DestinationPort);
                break;
        }
        request.End(proto);
        request.End(outer);
    }

    internal static ushort Type(ushort message) => (ushort)(NFNL_SUBSYS_CTNETLINK << 8 | message);

    private static AddressFamily Family(IPAddress address) => address.AddressFamily;

    /// <summary>struct nfgenmsg: family, version 0, resource id 0.</summary>
    private static byte[] NfGen(AddressFamily family) =>
        [(byte)(family == AddressFamily.InterNetwork ? 2 : 10), 0, 0, 0];

    public void Dispose() => _socket.Dispose();
}
