using System.Collections.Immutable;
using System.Net;
using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Tests.State;

/// <summary>Generated facts with every field set to something other than its default: IPv4 and
/// IPv6 on several networks, prefixes other than /32 and /128, drivers other than bridge, MACs,
/// published ports, DNS servers of both families, images and network modes. Strings include
/// quotes, backslashes, newlines and characters outside ASCII (surrogate pairs too).</summary>
public static class FactsGen
{
    private static readonly string[] Pieces =
        ["a", "Z", "0", "-", "_", ".", "/", ":", "\"", "\\", "\n", "\t", " ", "{", "}", "[", "]", "é", "Ж", "中", "🐳", "\u0001", "%", "&"];

    public static readonly Gen<string> Text =
        from n in Gen.Choose(1, 12)
        from parts in Gen.Elements(Pieces).ArrayOf(n)
        select string.Concat(parts);

    public static readonly Gen<IPAddress> V4 =
        from b in Gen.Choose(0, 255).ArrayOf(4)
        select new IPAddress(b.Select(x => (byte)x).ToArray());

    public static readonly Gen<IPAddress> V6 =
        from b in Gen.Choose(0, 255).ArrayOf(16)
        select new IPAddress(b.Select(x => (byte)x).ToArray());

    public static readonly Gen<string> Mac =
        from b in Gen.Choose(0, 255).ArrayOf(6)
        select string.Join(':', b.Select(x => x.ToString("x2")));

    public static readonly Gen<string> HexId =
        from b in Gen.Choose(0, 255).ArrayOf(32)
        select string.Concat(b.Select(x => x.ToString("x2")));

    public static readonly Gen<NetworkAttachment> Attachment =
        from name in Text
        from id in HexId
        from v4 in V4
        from v6 in V6
        from p4 in Gen.Choose(1, 31)
        from p6 in Gen.Choose(1, 127)
        from driver in Gen.Elements("overlay", "macvlan", "ipvlan", "null", "weave/net:latest")
        from mac in Mac
        from bridge in Text
        from index in Gen.Choose(1, 1_000_000)
        from port in Text
        from boot in HexId
        select new NetworkAttachment(name, id, v4, v6, p4, p6, driver, mac, "br-" + bridge, new BoundPort(index, "veth" + port, boot));

    public static readonly Gen<PublishedPort> Port =
        from container in Gen.Choose(1, 65535)
        from proto in Gen.Elements(L4Proto.Tcp, L4Proto.Udp)
        from hostIp in Gen.Elements("0.0.0.0", "::", "198.18.1.1", "2001:db8::1")
        from host in Gen.Choose(1, 65535)
        select new PublishedPort((ushort)container, proto, hostIp, (ushort)host);

    public static readonly Gen<ImmutableDictionary<string, string>> Labels =
        from n in Gen.Choose(1, 5)
        from keys in Text.ArrayOf(n)
        from values in Text.ArrayOf(n)
        select keys.Zip(values, (k, v) => (Key: k, Value: v)).GroupBy(kv => kv.Key).ToImmutableDictionary(g => g.Key, g => g.First().Value);

    public static readonly Gen<string> NetworkMode =
        from kind in Gen.Choose(0, 5)
        from id in HexId
        from name in Text
        select kind switch { 0 => "default", 1 => "bridge", 2 => "host", 3 => "none", 4 => "container:" + id, _ => name };

    /// <summary>Facts with every field set (Running both ways: false is its default, true the
    /// usual value; both must survive).</summary>
    public static readonly Gen<ContainerFacts> Facts =
        from id in HexId
        from name in Text
        from running in Gen.Elements(true, false)
        from labels in Labels
        from networkCount in Gen.Choose(1, 4)
        from networks in Attachment.ArrayOf(networkCount)
        from portCount in Gen.Choose(1, 4)
        from ports in Port.ArrayOf(portCount)
        from dns4 in V4.ArrayOf(2)
        from dns6 in V6
        from image in Text
        from mode in NetworkMode
        select new ContainerFacts(id, name, running, labels, [.. networks], [.. ports], [dns4[0], dns6, dns4[1]], image, mode);

    public static readonly Gen<AddressRange> Subnet =
        from v6 in Gen.Elements(false, true)
        from address in v6 ? V6 : V4
        from prefix in Gen.Choose(1, v6 ? 127 : 31)
        select Compile(address, prefix);

    public static readonly Gen<DockerNetwork> Network =
        from name in Text
        from id in HexId
        from driver in Gen.Elements("bridge", "overlay", "macvlan")
        from n in Gen.Choose(1, 3)
        from subnets in Subnet.ArrayOf(n)
        select new DockerNetwork(name, id, driver, [.. subnets]);

    private static AddressRange Compile(IPAddress address, int prefix) =>
        WhaleWall.Firewall.Compile.Compiler.Subnet(AddressRange.Single(address), prefix);
}
