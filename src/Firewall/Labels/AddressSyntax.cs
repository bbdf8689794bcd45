using System.Numerics;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Labels;

/// <summary>Parses an address field: <c>198.19.0.10</c>, <c>198.19.0.0/24</c>,
/// <c>198.19.0.1-198.19.0.9</c>, or the IPv6 forms of these. Never resolves names.</summary>
public static class AddressSyntax
{
    public readonly record struct Result(AddressRange? Range, string? Error);

    public static Result Parse(string text)
    {
        if (text.Length > 100) return Error("address is too long");

        var dash = text.IndexOf('-');
        if (dash >= 0)
        {
            var (lo, hi) = (Parse(text[..dash].Trim()), Parse(text[(dash + 1)..].Trim()));
            if (lo.Error is not null) return lo;
            if (hi.Error is not null) return hi;
            if (lo.Range!.Lo != lo.Range.Hi || hi.Range!.Lo != hi.Range.Hi)
                return Error($"range \"{LabelParser.Truncate(text)}\" must join two single addresses");
            if (lo.Range.Family != hi.Range.Family) return Error($"range \"{LabelParser.Truncate(text)}\" mixes IPv4 and IPv6");
            if (lo.Range.Lo > hi.Range.Lo) return Error($"range \"{LabelParser.Truncate(text)}\" ends before it starts");
            return new(new AddressRange(lo.Range.Family, lo.Range.Lo, hi.Range.Hi), null);
        }

        var slash = text.IndexOf('/');
        var addressText = slash >= 0 ? text[..slash] : text;
        if (!Addresses.TryParse(addressText, out var address))
            return Error($"\"{LabelParser.Truncate(text)}\" is not an IP address, CIDR or range");
        var (family, value) = Addresses.ToNumber(address);
        if (slash < 0) return new(new AddressRange(family, value, value), null);

        var bits = Addresses.Bits(family);
        var prefixText = text[(slash + 1)..];
        // decimal digits only, no leading zero: "/024", "/+24" and "/ 24" are not prefix lengths
        if (prefixText.Length is 0 or > 3 || !prefixText.All(char.IsAsciiDigit) || (prefixText.Length > 1 && prefixText[0] == '0') ||
            !int.TryParse(prefixText, out var prefix) || prefix > bits)
            return Error($"\"{LabelParser.Truncate(text)}\" has an invalid prefix length (0-{bits})");
        var hostMask = prefix == bits ? UInt128.Zero : (UInt128.One << (bits - prefix)) - 1;
        if ((value & hostMask) != 0)
            return Error($"\"{LabelParser.Truncate(text)}\" has host bits set; did you mean {Addresses.Format(family, value & ~hostMask)}/{prefix}?");
        return new(new AddressRange(family, value, value | hostMask), null);
    }

    private static Result Error(string message) => new(null, message);
}
