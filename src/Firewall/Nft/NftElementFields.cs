using System.Net;
using System.Text.Json;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

/// <summary>A listed element of one of WhaleWall's counted sets: its logical set and fields as
/// intervals (an exact twin's element reads as the element of its logical set,
/// <see cref="NftPlacement"/>) and its counter.</summary>
public sealed record ListedElement(string Set, IReadOnlyList<Field> Fields, ulong Packets, ulong Bytes);

/// <summary>Reads the elements of WhaleWall's sets from libnftables' JSON listing into the
/// compiler's <see cref="Field"/> intervals (so they can be compared with compiled elements).
/// Pure; an element it cannot read is skipped.</summary>
public static class NftElementFields
{
    private static readonly Dictionary<string, UInt128> Protocols = new(StringComparer.Ordinal)
    {
        ["icmp"] = 1, ["tcp"] = 6, ["udp"] = 17, ["ipv6-icmp"] = 58, ["icmpv6"] = 58,
    };

    public static List<ListedElement> Read(string json)
    {
        var result = new List<ListedElement>();
        using var doc = JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("nftables", out var items)) return result;
        foreach (var item in items.EnumerateArray())
        {
            if (!item.TryGetProperty("set", out var set) || set.GetProperty("name").GetString() is not { } name ||
                !NftSets.DeclaredByName.TryGetValue(name, out var shape) || !set.TryGetProperty("elem", out var elems)) continue;
            foreach (var e in elems.EnumerateArray())
            {
                var (val, counter) = e.TryGetProperty("elem", out var inner)
                    ? (inner.GetProperty("val"), inner.TryGetProperty("counter", out var c) ? c : default)
                    : (e, default);
                var parts = val.ValueKind == JsonValueKind.Object && val.TryGetProperty("concat", out var concat)
                    ? concat.EnumerateArray().ToList() : [val];
                if (parts.Count != shape.Key.Length) continue;
                var fields = new List<Field>();
                for (var i = 0; i < parts.Count && fields.Count == i; i++)
                    if (FieldOf(shape.Key[i], parts[i]) is { } f) fields.Add(f);
                if (fields.Count != parts.Count) continue;
                var (logical, logicalFields) = NftPlacement.Logical(name, fields);
                result.Add(new ListedElement(logical, logicalFields,
                    counter.ValueKind == JsonValueKind.Object ? counter.GetProperty("packets").GetUInt64() : 0,
                    counter.ValueKind == JsonValueKind.Object ? counter.GetProperty("bytes").GetUInt64() : 0));
            }
        }
        return result;
    }

    /// <summary>True when the two boxes share at least one point.</summary>
    public static bool Overlap(IReadOnlyList<Field> a, IReadOnlyList<Field> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Lo <= p.Second.Hi && p.Second.Lo <= p.First.Hi);

    private static Field? FieldOf(FieldKind kind, JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("range", out var range) && range.GetArrayLength() == 2)
            return Scalar(kind, range[0]) is { } lo && Scalar(kind, range[1]) is { } hi ? new Field(kind, lo.Lo, hi.Hi) : null;
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("prefix", out var prefix) && kind is FieldKind.Ipv4 or FieldKind.Ipv6)
        {
            if (!IPAddress.TryParse(prefix.GetProperty("addr").GetString(), out var a)) return null;
            var single = AddressRange.Single(a);
            var bits = kind == FieldKind.Ipv4 ? 32 : 128;
            var len = prefix.GetProperty("len").GetInt32();
            if (len < 0 || len > bits) return null;
            var host = len == bits ? UInt128.Zero : (UInt128.One << (bits - len)) - 1;
            return new Field(kind, single.Lo & ~host, (single.Lo & ~host) | host);
        }
        return Scalar(kind, v);
    }

    private static Field? Scalar(FieldKind kind, JsonElement v)
    {
        switch (kind)
        {
            case FieldKind.Ipv4 or FieldKind.Ipv6:
                if (v.ValueKind != JsonValueKind.String || !IPAddress.TryParse(v.GetString(), out var a)) return null;
                var r = AddressRange.Single(a);
                return new Field(kind, r.Lo, r.Hi);
            case FieldKind.Proto when v.ValueKind == JsonValueKind.String:
                return Protocols.TryGetValue(v.GetString()!, out var p) ? new Field(kind, p, p) : null;
            default:
                return v.ValueKind == JsonValueKind.Number && v.TryGetUInt32(out var n) ? new Field(kind, n, n) : null;
        }
    }
}
