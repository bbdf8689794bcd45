using System.Net;

namespace WhaleWall.Firewall.Dns;

/// <summary>A resource record of an answer, as much as the proxy reads: owner name, type,
/// class, TTL, and the data it follows (an address for A/AAAA, a target for CNAME).</summary>
public sealed record DnsRecord(string Name, ushort Type, ushort Class, uint Ttl, IPAddress? Address = null, string? Target = null);

/// <summary>The query the proxy sent upstream: the id it chose, the question, and where to.</summary>
public sealed record SentQuery(ushort Id, Names.DnsName Name, ushort Type, IPEndPoint Upstream);

/// <summary>A message that arrived on the proxy's upstream socket, decoded by the wire
/// library. <see cref="From"/> is where the datagram (or connection) came from.</summary>
public sealed record UpstreamAnswer(
    ushort Id,
    bool IsResponse,
    DnsRcode Rcode,
    bool Truncated,
    IReadOnlyList<DnsQuestion> Questions,
    IReadOnlyList<DnsRecord> Answers,
    IPEndPoint From);
