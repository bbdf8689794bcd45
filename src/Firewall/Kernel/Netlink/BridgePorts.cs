using System.Buffers.Binary;
using System.Runtime.InteropServices;
using WhaleWall.Firewall.Binding;
using static WhaleWall.Firewall.Kernel.Netlink.NetlinkNative;

namespace WhaleWall.Firewall.Kernel.Netlink;

/// <summary>
/// <see cref="IBridgePorts"/> over rtnetlink, from the host network namespace, without entering
/// the container's:
/// <list type="number">
/// <item>RTM_GETLINK by name: the bridge's ifindex;</item>
/// <item>RTM_GETLINK dump filtered by IFLA_MASTER = bridge: its ports, each veth with
///   IFLA_LINK_NETNSID (the id, in our namespace, of the namespace its peer lives in) and
///   IFLA_LINK (the peer's ifindex there). Dumping also makes the kernel assign those ids;</item>
/// <item>RTM_GETNSID with NETNSA_FD (an fd of the sandbox key file) or NETNSA_PID: the id of the
///   container's namespace; the port is the one whose IFLA_LINK_NETNSID equals it;</item>
/// <item>RTM_GETLINK with IFLA_TARGET_NETNSID: the peer's MAC address, read in the container's
///   namespace from outside (needs CAP_NET_ADMIN over that namespace; null without it).</item>
/// </list>
/// None of 1-3 needs a capability; opening the sandbox key needs read access to the file.
/// </summary>
public sealed class BridgePorts : IBridgePorts, IDisposable
{
    private const ushort RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWNSID = 88, RTM_GETNSID = 90;
    private const ushort IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_LINK = 5, IFLA_MASTER = 10,
        IFLA_LINK_NETNSID = 37, IFLA_TARGET_NETNSID = 46;
    private const ushort NETNSA_NSID = 1, NETNSA_PID = 2, NETNSA_FD = 3;
    private const int IfInfoLength = 16;

    private const uint RTMGRP_LINK = 1;

    private readonly NetlinkSocket _socket;
    private readonly bool _strict;
    private readonly string? _netnsPath;

    /// <param name="netnsPath">Tests only: the namespace to work in (default: this process's).</param>
    public BridgePorts(string? netnsPath = null)
    {
        _netnsPath = netnsPath;
        _socket = new NetlinkSocket(NETLINK_ROUTE, netnsPath);
        _strict = _socket.EnableStrictChecks();
    }

    public BridgePort? Find(string sandboxKey, string bridge)
    {
        var fd = open(sandboxKey, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == NetlinkException.ENOENT) return null; // the sandbox is gone
            throw new NetlinkException(errno, $"open {sandboxKey}");
        }
        try { return FindPort(bridge, () => NsId(NETNSA_FD, (uint)fd)); }
        finally { close(fd); }
    }

    public BridgePort? FindByPid(int pid, string bridge) =>
        FindPort(bridge, () => NsId(NETNSA_PID, (uint)pid));

    public IReadOnlyList<BridgePort> FindByMac(string bridge, string mac, IReadOnlySet<int>? skip = null)
    {
        if (GetLink(index: 0, name: bridge, targetNsId: null) is not { } master) return [];
        var found = new List<BridgePort>();
        foreach (var port in Ports(master.Index))
        {
            if (skip?.Contains(port.Index) == true || port.Peer is not { } peer || peer == 0) continue;
            // the peer is in the container's namespace (IFLA_LINK_NETNSID), or, while Docker is
            // still setting the container up, in ours: Docker 20.10 reports `network connect`
            // before it moves the container end into the sandbox
            string? peerMac;
            try { peerMac = GetLink(index: peer, name: null, targetNsId: port.LinkNsId)?.Mac; }
            catch (NetlinkException e) when (e.Errno == NetlinkException.EPERM || e.Errno == NetlinkException.EINVAL) { continue; }
            if (string.Equals(peerMac, mac, StringComparison.OrdinalIgnoreCase)) found.Add(new BridgePort(port.Index, port.Name, peer, peerMac));
        }
        return found;
    }

    /// <summary>Waits until exactly one port of <paramref name="bridge"/> (not in
    /// <paramref name="skip"/>) has a peer with MAC <paramref name="mac"/>, and returns it; null
    /// on timeout or when several do. Woken by the kernel's link notifications (RTNLGRP_LINK:
    /// Docker moving the container's end into its sandbox and setting its MAC), so it answers
    /// within a netlink round trip of the port being ready, without polling.</summary>
    public BridgePort? WaitForMac(string bridge, string mac, TimeSpan timeout, IReadOnlySet<int>? skip = null)
    {
        using var watch = new NetlinkSocket(NETLINK_ROUTE, _netnsPath, groups: RTMGRP_LINK);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            // subscribed first, then looked: a change between the two still wakes us
            var found = FindByMac(bridge, mac, skip);
            if (found.Count == 1) return found[0];
            if (found.Count > 1) return null;
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) return null;
            watch.WaitForNotification(left);
        }
    }

    public bool Exists(int index, string name)
    {
        var link = GetLink(index: index, name: null, targetNsId: null);
        return link is not null && link.Value.Name == name;
    }

    private BridgePort? FindPort(string bridge, Func<int?> nsId)
    {
        if (GetLink(index: 0, name: bridge, targetNsId: null) is not { } master) return null;
        // first the ports (dumping them assigns ids to their peers' namespaces), then the id
        var ports = Ports(master.Index);
        if (nsId() is not { } id || id < 0) return null;
        foreach (var port in ports)
        {
            if (port.LinkNsId != id || port.Peer is not { } peer) continue;
            string? mac = null;
            try { mac = GetLink(index: peer, name: null, targetNsId: id)?.Mac; }
            catch (NetlinkException e) when (e.Errno == NetlinkException.EPERM || e.Errno == NetlinkException.EINVAL) { }
            return new BridgePort(port.Index, port.Name, peer, mac);
        }
        return null;
    }

    private readonly record struct Link(int Index, string Name, int? Master, int? LinkNsId, int? Peer, string? Mac);

    /// <summary>The links enslaved to <paramref name="master"/> (the kernel filters when it
    /// can; filtered again here for kernels that ignore the attribute).</summary>
    private List<Link> Ports(int master)
    {
        var request = new NetlinkRequest(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP).Header(IfInfo(0)).U32(IFLA_MASTER, (uint)master);
        if (!_strict) request = new NetlinkRequest(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP).Header(IfInfo(0));
        var links = new List<Link>();
        foreach (var m in _socket.Exchange(request))
            if (m.Type == RTM_NEWLINK && Parse(m) is { } link && link.Master == master) links.Add(link);
        return links;
    }

    private Link? GetLink(int index, string? name, int? targetNsId)
    {
        var request = new NetlinkRequest(RTM_GETLINK, NLM_F_REQUEST).Header(IfInfo(index));
        if (name is not null) request.String(IFLA_IFNAME, name);
        if (targetNsId is { } ns) request.S32(IFLA_TARGET_NETNSID, ns);
        try
        {
            foreach (var m in _socket.Exchange(request))
                if (m.Type == RTM_NEWLINK) return Parse(m);
        }
        catch (NetlinkException e) when (e.Errno is NetlinkException.ENODEV or NetlinkException.ENOENT) { }
        return null;
    }

    private int? NsId(ushort attribute, uint value)
    {
        var request = new NetlinkRequest(RTM_GETNSID, NLM_F_REQUEST).Header([0 /* AF_UNSPEC */]).U32(attribute, value);
        try
        {
            foreach (var m in _socket.Exchange(request))
                if (m.Type == RTM_NEWNSID) return m.Attributes(1).S32(NETNSA_NSID);
        }
        catch (NetlinkException e) when (e.Errno is NetlinkException.ENOENT or 3 /* ESRCH: no such pid */) { }
        return null;
    }

    private static Link? Parse(NetlinkMessage m)
    {
        if (m.Payload.Length < IfInfoLength) return null;
        var index = BinaryPrimitives.ReadInt32LittleEndian(m.Payload.AsSpan(4));
        var a = m.Attributes(IfInfoLength);
        var mac = a.Bytes(IFLA_ADDRESS) is { Length: 6 } raw ? Convert.ToHexString(raw.Span).ToLowerInvariant() : null;
        if (mac is not null) mac = string.Join(':', Enumerable.Range(0, 6).Select(i => mac.Substring(i * 2, 2)));
        return new Link(index, a.String(IFLA_IFNAME) ?? "", a.S32(IFLA_MASTER), a.S32(IFLA_LINK_NETNSID), a.S32(IFLA_LINK), mac);
    }

    private static byte[] IfInfo(int index)
    {
        var header = new byte[IfInfoLength]; // family AF_UNSPEC, type/flags/change 0
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), index);
        return header;
    }

    public void Dispose() => _socket.Dispose();
}
