using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

public enum FieldKind { Ipv4, Ipv6, Proto, Port }

/// <summary>One component of a set element: an inclusive interval of numbers.</summary>
public readonly record struct Field(FieldKind Kind, UInt128 Lo, UInt128 Hi)
{
    public static Field Address(AddressRange range) =>
        new(range.Family == IpFamily.V4 ? FieldKind.Ipv4 : FieldKind.Ipv6, range.Lo, range.Hi);

    public override string ToString() => Kind switch
    {
        FieldKind.Ipv4 or FieldKind.Ipv6 => new AddressRange(Kind == FieldKind.Ipv4 ? IpFamily.V4 : IpFamily.V6, Lo, Hi).ToString(),
        _ => Lo == Hi ? Lo.ToString() : $"{Lo}-{Hi}",
    };
}

/// <summary>An element of one of WhaleWall's sets. Equal elements have equal <see cref="Key"/>.</summary>
public sealed class Element : IEquatable<Element>, IComparable<Element>
{
    public Element(string set, ImmutableArray<Field> fields)
    {
        Set = set;
        Fields = fields;
        Key = set + " " + string.Join(" . ", fields);
    }

    public string Set { get; }
    public ImmutableArray<Field> Fields { get; }
    public string Key { get; }

    public bool Equals(Element? other) => other is not null && Key == other.Key;
    public override bool Equals(object? obj) => Equals(obj as Element);
    public override int GetHashCode() => Key.GetHashCode(StringComparison.Ordinal);
    public int CompareTo(Element? other) => string.CompareOrdinal(Key, other?.Key);
    public override string ToString() => Key;
}

/// <summary>Everything one owner (a container) contributes to the kernel.</summary>
public sealed record Fragment(string Owner, ImmutableArray<Element> Elements)
{
    public static Fragment Empty(string owner) => new(owner, []);
}
