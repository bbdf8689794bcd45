using System.Collections.Immutable;

namespace WhaleWall.Firewall.Policy;

/// <summary>A Docker network: what deny-by-default mode needs to know of it.</summary>
public sealed record DockerNetwork(string Name, string Id, string Driver, ImmutableArray<AddressRange> Subnets)
{
    public NetworkAttachment AsAttachment() => new(Name, Id, null, null, Driver: Driver);
}
