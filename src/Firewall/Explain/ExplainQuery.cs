using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Explain;

public enum Direction { Egress, Ingress }

/// <summary>What to explain. Egress: the container sends to <see cref="Peer"/> (an address, a
/// host name or a container name) on <see cref="Port"/>. Ingress: <see cref="Peer"/> (an
/// address, a container name, or <c>host</c> for the host itself) sends to the container's
/// <see cref="Port"/>. For ICMP <see cref="Port"/> is the ICMP type (the code is 0).
/// <see cref="SourcePort"/>: null for "any ephemeral port" (32768-60999, Linux's default range):
/// the flow counts as allowed only when every one of them is.</summary>
public sealed record ExplainQuery(Direction Direction, L4Proto Proto, string Peer, ushort Port, ushort? SourcePort = null)
{
    public const ushort EphemeralLo = 32768, EphemeralHi = 60999;

    /// <summary>The peer that stands for the host itself (ingress through <c>mapped_ports.localhost</c>).</summary>
    public const string Host = "host";
}

/// <summary>An answer the DNS proxy gave the container: <see cref="Name"/> (the name it asked
/// for) resolved to <see cref="Address"/>, which stays open until <see cref="Expires"/>.</summary>
public sealed record DnsLookup(string Name, IPAddress Address, DateTimeOffset Expires);

/// <summary>Everything the evaluator looks at; no I/O behind any of it.
/// <paramref name="Others"/>: the other containers the daemon knows (peers, the source of an
/// ingress query, the destination of an egress one).
/// <paramref name="Resolved"/>: the daemon's own resolutions of <c>hosts:</c> entries.
/// <paramref name="Lookups"/>: the container's own answers from the DNS proxy (name -> address -> expiry).
/// <paramref name="GatewaySubnets"/>: deny-by-default mode's gateway subnets (gw4/gw6), when known.</summary>
public sealed record ExplainInput(
    DecisionContext Context,
    ContainerFacts Self,
    ImmutableArray<ContainerFacts> Others,
    DateTimeOffset Now,
    IReadOnlyDictionary<string, HostAddresses>? Resolved = null,
    ImmutableArray<DnsLookup> Lookups = default,
    ImmutableArray<AddressRange> GatewaySubnets = default)
{
    /// <summary>Most other containers looked at; more are ignored (a hostile report stays cheap).</summary>
    public const int MaxOthers = 10_000;

    /// <summary>Most DNS answers looked at.</summary>
    public const int MaxLookups = 4096;
}
