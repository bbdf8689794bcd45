using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace WhaleWall.Firewall.Binding;

/// <summary>
/// A managed container's interface on one bridge network, bound to its port: frames from
/// <see cref="Port"/> must carry <see cref="Mac"/> and one of its addresses, and these addresses
/// and this MAC are refused from every other port. A container on two networks has two bindings.
/// <para>Two steps, because Docker reports <c>network connect</c> before the port is ready (the
/// container's end of the veth gets its MAC and moves into the sandbox a few hundred ms later):
/// first without a port (the addresses and MAC are owned, so the container can send nothing
/// yet: fail closed), then with the port once it is found (<see cref="IBridgePorts.FindByMac"/>).</para>
/// </summary>
/// <param name="Port">ifindex of the host-side veth (<see cref="BridgePort.Index"/>), or null
/// while it is not known yet.</param>
/// <param name="Mac">the container interface's MAC (the endpoint's MacAddress in Docker's
/// network inspect).</param>
/// <param name="IPv4">its IPv4 address on that network, if any.</param>
/// <param name="IPv6">its global IPv6 address on that network, if any.</param>
/// <param name="LinkLocal">the link-local address it may use for neighbour discovery; by
/// default the EUI-64 address of <paramref name="Mac"/> (what the kernel configures unless the
/// container's <c>addr_gen_mode</c> sysctl says otherwise).</param>
public sealed record PortBinding(int? Port, PhysicalAddress Mac, IPAddress? IPv4, IPAddress? IPv6, IPAddress LinkLocal)
{
    public static PortBinding Of(int? port, PhysicalAddress mac, IPAddress? ipv4, IPAddress? ipv6) =>
        new(port, mac, ipv4, ipv6, LinkLocalAddress.Eui64(mac));

    /// <summary>The same binding, now on its port.</summary>
    public PortBinding On(int port) => this with { Port = port };

    /// <summary>Every IPv6 address of the binding (global first, then link-local).</summary>
    public IEnumerable<IPAddress> IPv6Addresses => IPv6 is null ? [LinkLocal] : [IPv6, LinkLocal];
}

/// <summary>A container WhaleWall knows and leaves unmanaged, on a network that holds a
/// managed container: its addresses (with its MAC) are "classified" on its own port, so they
/// pass the "unknown addresses wait" rule there, and nowhere else.</summary>
public sealed record KnownPort(int Port, PhysicalAddress Mac, IPAddress? IPv4, IPAddress? IPv6);

/// <summary>The subnet of a Docker network that holds at least one managed container: source
/// addresses in it that are not classified on their port are dropped ("unknown addresses
/// wait"). With <see cref="Lease"/>, the element expires by itself unless renewed (lenient mode:
/// a stopped daemon's guard lapses); without, it stays until removed (strict mode).</summary>
public sealed record GuardedSubnet(IPNetwork Subnet, TimeSpan? Lease = null);

/// <summary>The link-local address a port may use.</summary>
public static class LinkLocalAddress
{
    /// <summary>fe80::/64 with the modified EUI-64 interface id of <paramref name="mac"/>
    /// (RFC 4291 appendix A: flip the universal/local bit, insert ff:fe in the middle).</summary>
    public static IPAddress Eui64(PhysicalAddress mac)
    {
        var m = mac.GetAddressBytes();
        if (m.Length != 6) throw new ArgumentException("a MAC address has 6 bytes", nameof(mac));
        var bytes = new byte[16];
        bytes[0] = 0xfe;
        bytes[1] = 0x80;
        bytes[8] = (byte)(m[0] ^ 0x02);
        bytes[9] = m[1];
        bytes[10] = m[2];
        bytes[11] = 0xff;
        bytes[12] = 0xfe;
        bytes[13] = m[3];
        bytes[14] = m[4];
        bytes[15] = m[5];
        return new IPAddress(bytes);
    }

    public static bool IsLinkLocal(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 && address.IsIPv6LinkLocal;
}
