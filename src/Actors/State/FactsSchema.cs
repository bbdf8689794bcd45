using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.State;

/// <summary>The facts as the journal holds them (<c>.v3</c> shapes), defined once: every property
/// of <see cref="ContainerFacts"/>, <see cref="NetworkAttachment"/>, <see cref="PublishedPort"/>
/// and <see cref="DockerNetwork"/> with its journal name. The serializer writes and reads along
/// these lists and <see cref="FactsComparer"/> compares along them, so a field is stored exactly
/// when it is compared. A property missing here fails <c>FactsSchemaTests</c>; adding one
/// changes the frozen text in <c>StateSerializerTests</c>: give it a new version and an upcaster.</summary>
public static class FactsSchema
{
    // ---- PublishedPort
    private static readonly JournalField<PublishedPort, ushort> ContainerPort =
        new("container_port", nameof(PublishedPort.ContainerPort), p => p.ContainerPort, Codecs.UShort);
    private static readonly JournalField<PublishedPort, L4Proto> PortProto =
        new("proto", nameof(PublishedPort.Proto), p => p.Proto, Codecs.Proto);
    private static readonly JournalField<PublishedPort, string> HostIp =
        new("host_ip", nameof(PublishedPort.HostIp), p => p.HostIp, Codecs.Text);
    private static readonly JournalField<PublishedPort, ushort> HostPort =
        new("host_port", nameof(PublishedPort.HostPort), p => p.HostPort, Codecs.UShort);

    public static readonly JournalShape<PublishedPort> Port = new(
        [ContainerPort, PortProto, HostIp, HostPort],
        j => new PublishedPort(ContainerPort.Read(j), PortProto.Read(j), HostIp.Read(j), HostPort.Read(j)));

    // ---- NetworkAttachment
    private static readonly JournalField<NetworkAttachment, string> AttachmentName =
        new("name", nameof(NetworkAttachment.Name), n => n.Name, Codecs.Text);
    private static readonly JournalField<NetworkAttachment, string> AttachmentId =
        new("id", nameof(NetworkAttachment.Id), n => n.Id, Codecs.Text);
    private static readonly JournalField<NetworkAttachment, IPAddress?> IPv4 =
        new("ipv4", nameof(NetworkAttachment.IPv4), n => n.IPv4, Codecs.OptionalAddress);
    private static readonly JournalField<NetworkAttachment, IPAddress?> IPv6 =
        new("ipv6", nameof(NetworkAttachment.IPv6), n => n.IPv6, Codecs.OptionalAddress);
    private static readonly JournalField<NetworkAttachment, int> IPv4Prefix =
        new("ipv4_prefix", nameof(NetworkAttachment.IPv4Prefix), n => n.IPv4Prefix, Codecs.Int);
    private static readonly JournalField<NetworkAttachment, int> IPv6Prefix =
        new("ipv6_prefix", nameof(NetworkAttachment.IPv6Prefix), n => n.IPv6Prefix, Codecs.Int);
    private static readonly JournalField<NetworkAttachment, string> AttachmentDriver =
        new("driver", nameof(NetworkAttachment.Driver), n => n.Driver, Codecs.Text);
    private static readonly JournalField<NetworkAttachment, string?> MacAddress =
        new("mac", nameof(NetworkAttachment.MacAddress), n => n.MacAddress, Codecs.OptionalText);
    private static readonly JournalField<NetworkAttachment, string?> Bridge =
        new("bridge", nameof(NetworkAttachment.Bridge), n => n.Bridge, Codecs.OptionalText);
    private static readonly JournalField<NetworkAttachment, BoundPort?> BridgePort =
        new("port", nameof(NetworkAttachment.Port), n => n.Port, Codecs.OptionalPort);

    public static readonly JournalShape<NetworkAttachment> Attachment = new(
        [AttachmentName, AttachmentId, IPv4, IPv6, IPv4Prefix, IPv6Prefix, AttachmentDriver, MacAddress, Bridge, BridgePort],
        j => new NetworkAttachment(AttachmentName.Read(j), AttachmentId.Read(j), IPv4.Read(j), IPv6.Read(j),
            IPv4Prefix.Read(j), IPv6Prefix.Read(j), AttachmentDriver.Read(j), MacAddress.Read(j), Bridge.Read(j), BridgePort.Read(j)));

    // ---- ContainerFacts
    private static readonly JournalField<ContainerFacts, string> Id =
        new("id", nameof(ContainerFacts.Id), f => f.Id, Codecs.Text);
    private static readonly JournalField<ContainerFacts, string> Name =
        new("name", nameof(ContainerFacts.Name), f => f.Name, Codecs.Text);
    private static readonly JournalField<ContainerFacts, bool> Running =
        new("running", nameof(ContainerFacts.Running), f => f.Running, Codecs.Bool);
    private static readonly JournalField<ContainerFacts, ImmutableDictionary<string, string>> Labels =
        new("labels", nameof(ContainerFacts.Labels), f => f.Labels, Codecs.TextMap);
    private static readonly JournalField<ContainerFacts, ImmutableArray<NetworkAttachment>> Networks =
        new("networks", nameof(ContainerFacts.Networks), f => f.Networks, Codecs.List(Attachment));
    private static readonly JournalField<ContainerFacts, ImmutableArray<PublishedPort>> Ports =
        new("ports", nameof(ContainerFacts.Ports), f => f.Ports, Codecs.List(Port));
    private static readonly JournalField<ContainerFacts, ImmutableArray<IPAddress>> DnsServers =
        new("dns_servers", nameof(ContainerFacts.DnsServers), f => f.DnsServers, Codecs.AddressList);
    private static readonly JournalField<ContainerFacts, string?> Image =
        new("image", nameof(ContainerFacts.Image), f => f.Image, Codecs.OptionalText);
    private static readonly JournalField<ContainerFacts, string?> NetworkMode =
        new("network_mode", nameof(ContainerFacts.NetworkMode), f => f.NetworkMode, Codecs.OptionalText);

    public static readonly JournalShape<ContainerFacts> Container = new(
        [Id, Name, Running, Labels, Networks, Ports, DnsServers, Image, NetworkMode],
        j => new ContainerFacts(Id.Read(j), Name.Read(j), Running.Read(j), Labels.Read(j), Networks.Read(j), Ports.Read(j),
            DnsServers.Read(j), Image.Read(j), NetworkMode.Read(j)));

    // ---- DockerNetwork (deny-by-default mode's gateway networks)
    private static readonly JournalField<DockerNetwork, string> NetworkName =
        new("name", nameof(DockerNetwork.Name), n => n.Name, Codecs.Text);
    private static readonly JournalField<DockerNetwork, string> NetworkId =
        new("id", nameof(DockerNetwork.Id), n => n.Id, Codecs.Text);
    private static readonly JournalField<DockerNetwork, string> NetworkDriver =
        new("driver", nameof(DockerNetwork.Driver), n => n.Driver, Codecs.Text);
    private static readonly JournalField<DockerNetwork, ImmutableArray<AddressRange>> Subnets =
        new("subnets", nameof(DockerNetwork.Subnets), n => n.Subnets, Codecs.RangeList);

    public static readonly JournalShape<DockerNetwork> Network = new(
        [NetworkName, NetworkId, NetworkDriver, Subnets],
        j => new DockerNetwork(NetworkName.Read(j), NetworkId.Read(j), NetworkDriver.Read(j), Subnets.Read(j)));

    public static readonly Codec<ImmutableArray<DockerNetwork>> NetworkList = Codecs.List(Network);
}
