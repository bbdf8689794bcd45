using System.Collections.Immutable;
using System.Net;

namespace WhaleWall.Firewall.Policy;

/// <summary>What a host name currently resolves to, each address with the moment it stops
/// being trusted (its DNS TTL plus the configured grace).</summary>
public sealed record HostAddresses(string Name, ImmutableArray<(IPAddress Address, DateTimeOffset Expires)> Addresses)
{
    public static HostAddresses None(string name) => new(name, []);
}
