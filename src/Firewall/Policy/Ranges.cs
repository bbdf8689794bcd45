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

    /// <summary>Parses an address literal strictly: IPv4 as four decimal octets without
    /// leading zeros (<see cref="IPAddress.TryParse(string?, out IPAddress?)"/> reads
    /// <c>010.0.0.1</c> as octal 8.0.0.1, <c>0xa.0.0.1</c> as hex and <c>1.2</c> as a shorthand:
    /// a firewall must not guess), IPv6 as hex groups with an optional IPv4 tail held to the same
    /// rule; no host names, zone ids, brackets or spaces.</summary>
    public static bool TryParse(string text, out IPAddress address)
    {
        address = IPAddress.None;
        if (!IsStrictLiteral(text) || !IPAddress.TryParse(text, out var parsed)) return false;
        address = parsed;
        return true;
    }

    private static bool IsStrictLiteral(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 45) return false;
        var colon = text.LastIndexOf(':');
        if (colon < 0) return IsDottedQuad(text);
        var tail = text[(colon + 1)..];
        foreach (var ch in text[..colon])
            if (ch != ':' && !char.IsAsciiHexDigit(ch)) return false;
        return tail.Contains('.') ? IsDottedQuad(tail) : tail.All(char.IsAsciiHexDigit);
    }

    /// <summary><c>a.b.c.d</c>, each 0-255 in decimal without leading zeros.</summary>
    private static bool IsDottedQuad(string text)
    {
        var octets = text.Split('.');
        if (octets.Length != 4) return false;
        foreach (var octet in octets)
        {
            if (octet.Length is 0 or > 3 || !octet.All(char.IsAsciiDigit)) return false;
            if (octet.Length > 1 && octet[0] == '0') return false;
            if (int.Parse(octet, System.Globalization.CultureInfo.InvariantCulture) > 255) return false;
        }
        return true;
    }
}
