using System.Collections.Immutable;
using System.Net;

namespace WhaleWall.Firewall.Policy;

/// <summary>One network a container is attached to, with its addresses there, their prefix
/// lengths (the network's subnet) and the network's driver.
/// <paramref name="MacAddress"/>: the container's MAC on that network (lower-case, colon-separated), when known.
/// <paramref name="Bridge"/>: the Linux bridge of a bridge-driver network (<c>docker0</c>,
/// <c>br-&lt;id&gt;</c> or the network's <c>com.docker.network.bridge.name</c>), when known.
/// <paramref name="Port"/>: the container's port on that bridge, once WhaleWall has found it
/// (learned by WhaleWall, not told by Docker).</summary>
public sealed record NetworkAttachment(string Name, string Id, IPAddress? IPv4, IPAddress? IPv6,
    int IPv4Prefix = 32, int IPv6Prefix = 128, string Driver = "bridge", string? MacAddress = null,
    string? Bridge = null, BoundPort? Port = null);

/// <summary>A container's port on a bridge: the host-side veth (ifindex and name) in the boot
/// it was found in. An ifindex is never handed out again while the host runs, so a port
/// remembered across a daemon restart is trusted only in the same boot and while a link with
/// this index and name exists.</summary>
public sealed record BoundPort(int Index, string Name, string BootId);

/// <summary>A published port: container port/proto bound on the host.</summary>
public sealed record PublishedPort(ushort ContainerPort, L4Proto Proto, string HostIp, ushort HostPort);

/// <summary>What WhaleWall knows of a container from Docker: everything the compiler needs.</summary>
public sealed record ContainerFacts(
    string Id,
    string Name,
    bool Running,
    ImmutableDictionary<string, string> Labels,
    ImmutableArray<NetworkAttachment> Networks,
    ImmutableArray<PublishedPort> Ports,
    ImmutableArray<IPAddress> DnsServers = default,
    string? Image = null,
    string? NetworkMode = null)
{
    /// <summary>Docker's <c>HostConfig.NetworkMode</c>: <c>default</c>, <c>bridge</c>, <c>host</c>,
    /// <c>none</c>, <c>container:&lt;id&gt;</c> or a network name (null when unknown).</summary>
    public bool SharesAnotherNamespace => NetworkMode is "host" || (NetworkMode?.StartsWith("container:", StringComparison.Ordinal) ?? false);

    /// <summary>The resolvers the container's DNS queries leave through (what `_dns_` opens).</summary>
    public ImmutableArray<IPAddress> DnsServersOrEmpty => DnsServers.IsDefault ? [] : DnsServers;

    public const string ComposeProjectLabel = "com.docker.compose.project";
    public const string ComposeServiceLabel = "com.docker.compose.service";

    public string? ComposeProject => Labels.GetValueOrDefault(ComposeProjectLabel);
    public string? ComposeService => Labels.GetValueOrDefault(ComposeServiceLabel);
    public string ShortId => Id.Length > 12 ? Id[..12] : Id;

    public IEnumerable<IPAddress> Addresses =>
        Networks.SelectMany(n => new[] { n.IPv4, n.IPv6 }).OfType<IPAddress>();

    /// <summary>True when <paramref name="reference"/> names this container: its name, or its
    /// compose service when <paramref name="project"/> is the same compose project.</summary>
    public bool IsNamed(string reference, string? project) =>
        Name == reference.TrimStart('/') ||
        (project is not null && ComposeProject == project && ComposeService == reference);
}
