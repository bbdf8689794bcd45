using System.Collections.Immutable;
using System.Net;

namespace WhaleWall.Actors.Hostnames;

/// <summary>One DNS answer for a name: its addresses (A and AAAA, CNAMEs followed) with their
/// TTLs, or why there is none.</summary>
public sealed record DnsAnswer(ImmutableArray<(IPAddress Address, TimeSpan Ttl)> Addresses, string? Error)
{
    public static DnsAnswer Failed(string error) => new([], error);
}

/// <summary>The port to DNS.</summary>
public interface IDnsResolver
{
    Task<DnsAnswer> ResolveAsync(string name, CancellationToken ct);
}
