using System.Net;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Flows;

/// <summary>What the recorder knows when a flow arrives: the containers by address, which of
/// them learn, and the names their own DNS answers gave to addresses.</summary>
public interface IFlowDirectory
{
    /// <summary>The container whose own address this is (any container Docker told about).</summary>
    ContainerFacts? ContainerAt(IPAddress address);

    /// <summary>True when the container's new flows are recorded (audit or <c>whalewall.learn</c>).</summary>
    bool Learns(string containerId);

    /// <summary>The name the container's own DNS answer gave <paramref name="address"/>, if still known.</summary>
    string? NameOf(string containerId, IPAddress address);
}

/// <summary>Turns a new flow into what is recorded: the learning container that opened it
/// (original source), and where it went as the filter hooks saw it (after DNAT: the reply's
/// source), named as a rule would name it. Pure.</summary>
public static class FlowAttribution
{
    /// <param name="proxyPort">the DNS proxy's port: port-53 flows redirected there are the
    /// proxy's business (names in <c>hosts:</c> rules), not a destination of their own</param>
    public static ObservedFlow? Egress(NewFlow flow, IFlowDirectory directory, long atMs, int proxyPort)
    {
        var f = flow.Flow;
        if (directory.ContainerAt(f.Original.Source) is not { } self || !directory.Learns(self.Id)) return null;
        if (f.Original.DestinationPort == 53 && f.Reply.SourcePort == proxyPort && f.Protocol is ConntrackFlow.Tcp or ConntrackFlow.Udp) return null;
        if (f.Protocol is not (ConntrackFlow.Tcp or ConntrackFlow.Udp or ConntrackFlow.Icmp or ConntrackFlow.Icmpv6)) return null;

        var destination = f.Reply.Source;
        var proto = (L4Proto)f.Protocol;
        var port = proto is L4Proto.Icmp or L4Proto.Icmpv6 ? (ushort)(f.Original.DestinationPort >> 8) : f.Reply.SourcePort;
        FlowKey key;
        if (directory.ContainerAt(destination) is { } peer && peer.Id != self.Id)
            key = new FlowKey(DestinationKind.Container, PeerName(self, peer), proto, port);
        else if (directory.NameOf(self.Id, destination) is { } name)
            key = new FlowKey(DestinationKind.Host, name, proto, port);
        else
            key = new FlowKey(DestinationKind.Address, (destination.IsIPv4MappedToIPv6 ? destination.MapToIPv4() : destination).ToString(), proto, port);
        return new ObservedFlow(FlowLog.OwnerOf(self), self.ComposeProject, self.ComposeService, self.Name.TrimStart('/'), key, atMs, flow.AuditDrop);
    }

    /// <summary>How a <c>container:</c> rule of <paramref name="self"/> names <paramref name="peer"/>:
    /// its compose service within the same project (replicas included), else its name.</summary>
    public static string PeerName(ContainerFacts self, ContainerFacts peer) =>
        self.ComposeProject is { } p && peer.ComposeProject == p && peer.ComposeService is { } s ? s : peer.Name.TrimStart('/');
}
