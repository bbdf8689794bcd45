using System.Net;

namespace WhaleWall.Firewall.Flows;

/// <summary>One direction of a tracked flow. For TCP, UDP, SCTP, DCCP and UDP-Lite the ports;
/// for ICMP/ICMPv6 <see cref="SourcePort"/> is the echo id and <see cref="DestinationPort"/> is
/// <c>type &lt;&lt; 8 | code</c>; zero for protocols without ports.</summary>
public sealed record FlowTuple(IPAddress Source, IPAddress Destination, ushort SourcePort, ushort DestinationPort);

/// <summary>A conntrack entry: the original direction (as its first packet arrived, before NAT)
/// and the reply direction (as the answer is expected, after NAT). The filter hooks between
/// DNAT and SNAT (forward, input) saw the first packet as <see cref="Original"/>.Source →
/// <see cref="Reply"/>.Source.</summary>
public sealed record ConntrackFlow(byte Protocol, FlowTuple Original, FlowTuple Reply, ushort Zone = 0, uint Id = 0)
{
    public const byte Icmp = 1, Tcp = 6, Udp = 17, Icmpv6 = 58;

    /// <summary>Whether the destination was rewritten (a published port: Docker's DNAT).</summary>
    public bool Dnat => !Original.Destination.Equals(Reply.Source) || Original.DestinationPort != Reply.SourcePort;

    /// <summary>Whether <paramref name="address"/> is an end of this flow (either direction,
    /// before or after NAT).</summary>
    public bool Involves(IPAddress address) =>
        Original.Source.Equals(address) || Original.Destination.Equals(address)
        || Reply.Source.Equals(address) || Reply.Destination.Equals(address);
}

/// <summary>The kernel's connection tracking table, for what WhaleWall must do to it: no flow
/// outlives the policy that allowed it. An entry that is deleted makes the flow's next packet
/// "new" again, so it meets the current rules (allowed flows of TCP resume through conntrack's
/// mid-stream pickup; denied ones are dropped).</summary>
public interface IConntrack
{
    /// <summary>Every entry in which one of <paramref name="addresses"/> is an end: the original
    /// source (the container opened it) or the reply source (the container answers it, directly
    /// or behind a published port's DNAT). Asked once for all the addresses a change touches:
    /// reading the table costs the kernel a walk of its whole hash table, whatever is asked.</summary>
    IReadOnlyList<ConntrackFlow> FlowsOf(IReadOnlyCollection<IPAddress> addresses);

    /// <summary>Deletes these entries (each by its original tuple, zone and id, so an entry
    /// created since for the same tuple is left alone). Entries already gone are skipped.
    /// Returns how many were deleted.</summary>
    int Delete(IEnumerable<ConntrackFlow> flows);
}
