using WhaleWall.Firewall.Flows;
using static WhaleWall.Firewall.Kernel.Netlink.NetlinkNative;

namespace WhaleWall.Firewall.Kernel.Netlink;

/// <summary>
/// <see cref="INewFlows"/> over ctnetlink's multicast group NFNLGRP_CONNTRACK_NEW, the way
/// <c>conntrack -E -e NEW</c> listens. One message per flow (not per packet), sent when the
/// flow is confirmed, i.e. after its first packet passed every hook: the ct mark the rules set
/// on the way is in it. Needs CAP_NET_ADMIN; net.netfilter.nf_conntrack_events 1, or 2 (the
/// default since Linux 6.0: on while someone listens).
/// </summary>
public sealed class ConntrackEvents : INewFlows
{
    private const uint NFNLGRP_CONNTRACK_NEW = 1;
    private const ushort CTA_MARK = 8;

    private readonly NetlinkSocket socket;
    private readonly List<NetlinkMessage> messages = [];

    /// <param name="netnsPath">Tests only: the namespace whose flows to follow (default: this process's).</param>
    public ConntrackEvents(string? netnsPath = null)
    {
        socket = new NetlinkSocket(NETLINK_NETFILTER, netnsPath, groups: 1u << (int)(NFNLGRP_CONNTRACK_NEW - 1));
        socket.SetReceiveBuffer(4 << 20);
    }

    public bool Read(TimeSpan timeout, List<NewFlow> into)
    {
        messages.Clear();
        var complete = socket.ReadNotifications(timeout, messages);
        foreach (var m in messages)
        {
            if (m.Type != Conntrack.Type(Conntrack.IPCTNL_MSG_CT_NEW) || Conntrack.Parse(m) is not { } flow) continue;
            into.Add(new NewFlow(flow, m.Attributes(4).Be32(CTA_MARK) ?? 0));
        }
        return complete;
    }

    public void Dispose() => socket.Dispose();
}
