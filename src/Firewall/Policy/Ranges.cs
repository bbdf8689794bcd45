using System.Net;
using System.Net.Sockets;

namespace WhaleWall.Firewall.Policy;

public enum IpFamily { V4, V6 }

/// <summary>An inclusive range of addresses of one family: a single address, a CIDR or a-b.</summary>
public sealed record AddressRange(IpFamily Family, UInt128 Lo, UInt128 Hi)
{
    public static AddressRange Single(IPAddress address)
    {
        var (family, value) = Addresses.ToNumber(address);
        return new AddressRange(family, value, value);
    }

    public static AddressRange Any(IpFamily family) =>
        new(family, UInt128.Zero, family == IpFamily.V4 ? uint.MaxValue : UInt128.MaxValue);

    public override string ToString() => Lo == Hi
        ? Addresses.Format(Family, Lo)
        : $"{Addresses.Format(Family, Lo)}-{Addresses.Format(Family, Hi)}";
}

/// <summary>An inclusive port range; a single port has Lo == Hi.</summary>
public sealed record PortRange(ushort Lo, ushort Hi)
{
    public static readonly PortRange All = new(0, ushort.MaxValue);
    public override string ToString() => Lo == Hi ? Lo.ToString() : $"{Lo}-{Hi}";
}

public enum L4Proto : byte { Icmp = 1, Tcp = 6, Udp = 17, Icmpv6 = 58 }

/// <summary>Conversions between <see cref="IPAddress"/> and the numbers the compiler works with.</summary>
public static class Addresses
{
    public static (IpFamily, UInt128) ToNumber(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        var bytes = address.GetAddressBytes();
        UInt128 value = 0;
        foreach (var b in bytes) value = (value << 8) | b;
        return (address.AddressFamily == AddressFamily.InterNetwork ? IpFamily.V4 : IpFamily.V6, value);
    }

    public static IPAddress ToAddress(IpFamily family, UInt128 value)
    {
        var length = family == IpFamily.V4 ? 4 : 16;
        var bytes = new byte[length];
        for (var i = length - 1; i >= 0; i--) { bytes[i] = (byte)(value & 0xff); value >>= 8; }
        return new IPAddress(bytes);
    }

    public static string Format(IpFamily family, UInt128 value) => ToAddress(family, value).ToString();

    public static int Bits(IpFamily family) => family == IpFamily.V4 ? 32 : 128;

    /// <summary>Parses an address literal strictly (no host names, no zone ids).</summary>
    public static bool TryParse(string text, out IPAddress address)
    {
        address = IPAddress.None;
        if (string.IsNullOrWhiteSpace(text) || text.Contains('%')) return false;
        if (!IPAddress.TryParse(text, out var parsed)) return false;
        // IPAddress.TryParse accepts "1" or "1.2" as IPv4 shorthands; a firewall must not guess.
        if (parsed.AddressFamily == AddressFamily.InterNetwork && text.Count(c => c == '.') != 3) return false;
        address = parsed;
        return true;
    }

}
