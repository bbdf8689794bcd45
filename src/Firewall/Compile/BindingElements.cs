using System.Collections.Immutable;
using System.Net;
using System.Net.NetworkInformation;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Compile;

/// <summary>How containers are bound to their bridge ports (docs/binding.md). <paramref name="GuardLease"/>:
/// null in strict mode (unknown addresses on a guarded network stay dropped while the daemon is
/// down), else how long a guard lives unless the running daemon renews it (lenient mode).</summary>
public sealed record BindingSettings(bool Enabled, TimeSpan? GuardLease)
{
    public static readonly BindingSettings Strict = new(true, null);
    public static readonly BindingSettings Off = new(false, null);
}

/// <summary>A container's elements in the bridge table, from its facts. Pure. A managed
/// container owns its MAC and addresses on every bridge network it is on (from no other port),
/// its port may send exactly those once it is known, and its networks are guarded (unknown
/// addresses wait). A known unmanaged container's addresses are classified on its own port.</summary>
public static class BindingElements
{
    public static ImmutableArray<BridgeElement> For(ContainerFacts facts, bool managed, BindingSettings settings)
    {
        if (!settings.Enabled || !facts.Running) return [];
        var elements = new List<BridgeElement>();
        foreach (var n in facts.Networks.Where(Bindable))
        {
            if (!PhysicalAddress.TryParse(n.MacAddress, out var mac) || mac.GetAddressBytes().Length != 6) continue;
            if (managed)
            {
                elements.AddRange(BridgeLayout.Elements(PortBinding.Of(n.Port?.Index, mac, n.IPv4, n.IPv6)));
                foreach (var subnet in Subnets(n)) elements.Add(BridgeLayout.Element(new GuardedSubnet(subnet, settings.GuardLease)));
            }
            else if (n.Port is { } port)
                elements.AddRange(BridgeLayout.Elements(new KnownPort(port.Index, mac, n.IPv4, n.IPv6)));
        }
        return [.. elements.Distinct().Order()];
    }

    /// <summary>Attachments WhaleWall binds: bridge-driver networks whose bridge and MAC it knows.</summary>
    public static bool Bindable(NetworkAttachment n) =>
        n.Driver == "bridge" && n.Bridge is not null && n.MacAddress is not null && (n.IPv4 is not null || n.IPv6 is not null);

    /// <summary>The networks' subnets as the attachment's prefix lengths give them.</summary>
    private static IEnumerable<IPNetwork> Subnets(NetworkAttachment n)
    {
        if (n.IPv4 is { } v4) yield return new IPNetwork(Mask(v4, n.IPv4Prefix), n.IPv4Prefix);
        if (n.IPv6 is { } v6) yield return new IPNetwork(Mask(v6, n.IPv6Prefix), n.IPv6Prefix);
    }

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(prefix - i * 8, 0, 8);
            bytes[i] &= (byte)(0xff << (8 - keep));
        }
        return new IPAddress(bytes);
    }
}
