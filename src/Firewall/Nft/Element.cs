using System.Collections.Immutable;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

public enum FieldKind { Ipv4, Ipv6, Proto, Port, Mark }

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

/// <summary>An element of one of WhaleWall's sets, or of a verdict map when
/// <see cref="Target"/> names the chain it jumps to. Equal elements have equal <see cref="Key"/>.</summary>
public sealed class Element : IEquatable<Element>, IComparable<Element>
{
    public Element(string set, ImmutableArray<Field> fields, string? target = null, DateTimeOffset? expires = null)
    {
        Set = set;
        Fields = fields;
        Target = target;
        Expires = expires;
        Key = set + " " + string.Join(" . ", fields) + (target is null ? "" : " : goto " + target);
        (PhysicalSet, PhysicalFields) = NftPlacement.Place(set, fields);
    }

    public string Set { get; }
    public ImmutableArray<Field> Fields { get; }
    public string? Target { get; }

    /// <summary>For addresses from DNS: when the kernel drops the element by itself (TTL +
    /// grace). Not part of the element's identity.</summary>
    public DateTimeOffset? Expires { get; }
    public string Key { get; }

    /// <summary>The set that holds the element in the kernel: its exact hash twin when every
    /// field is one value (<see cref="NftPlacement"/>), else <see cref="Set"/>.</summary>
    public string PhysicalSet { get; }

    /// <summary>The fields as the kernel's set keys them (an exact flow twin has no source port).</summary>
    public ImmutableArray<Field> PhysicalFields { get; }

    public bool Equals(Element? other) =>
        ReferenceEquals(this, other) || (other is not null && GetHashCode() == other.GetHashCode() && Key == other.Key);
    public override bool Equals(object? obj) => Equals(obj as Element);
    /// <summary>Computed once: elements are dictionary keys by the hundred thousand at start-up.</summary>
    public override int GetHashCode() => hash != 0 ? hash : hash = Key.GetHashCode(StringComparison.Ordinal) | 1;

    private int hash;
    public int CompareTo(Element? other) => string.CompareOrdinal(Key, other?.Key);
    public override string ToString() => Key;
}

/// <summary>A small chain of WhaleWall's for what a set cannot say: a rule's log prefix and
/// verdict (<c>r_*</c>), or the queues of a flow's established packets (<c>q_*</c>). Its name
/// is derived from its content, so equal chains are shared and a changed one is a new one.
/// Label authors choose that content, so the derivation must not let one forge another's
/// name: <c>r_</c> names are 128 bits of SHA-256 over an unambiguous encoding of the content;
/// <c>q_</c> names and est-queue ct marks spell the two queue numbers themselves, so they
/// cannot collide at all and stay the same across restarts and versions.</summary>
public sealed record RuleChain(string Name, string? LogPrefix, uint? SetMark, string? Jump, ushort? Queue,
    ushort? OriginalQueue, ushort? ReplyQueue) : IComparable<RuleChain>
{
    public const string RulePrefix = "r_";
    public const string QueuePrefix = "q_";

    /// <summary>Log (rate-limited), remember the flow for its est queues, then the verdict.
    /// Without a verdict the chain ends and the packet goes on being checked as allowed.</summary>
    public static RuleChain ForRule(string? logPrefix, uint? setMark, string? jump, ushort? queue) =>
        new(RulePrefix + Digest(Field(logPrefix) + Field(setMark?.ToString(CultureInfo.InvariantCulture)) + Field(jump) +
                                Field(queue?.ToString(CultureInfo.InvariantCulture))),
            logPrefix, setMark, jump, queue, null, null);

    /// <summary>Established packets of a marked flow: original direction to one queue, replies
    /// to the other. Both at most <see cref="PolicySize.MaxEstQueue"/> (the parser refuses more).</summary>
    public static RuleChain ForEstablished(ushort original, ushort reply) =>
        new($"{QueuePrefix}{original}_{reply}", null, null, null, null, original, reply);

    /// <summary>The ct mark that sends a flow's established packets to <paramref name="chain"/>:
    /// <c>0x80000000 | original &lt;&lt; 15 | reply</c>, one mark per queue pair and no other.</summary>
    public static uint MarkOf(RuleChain chain)
    {
        if (chain.OriginalQueue is not { } original || chain.ReplyQueue is not { } reply ||
            original > PolicySize.MaxEstQueue || reply > PolicySize.MaxEstQueue)
            throw new ArgumentException($"{chain.Name} is not an est-queue chain with queues 0-{PolicySize.MaxEstQueue}", nameof(chain));
        return 0x80000000u | ((uint)original << 15) | reply;
    }

    public int CompareTo(RuleChain? other) => string.CompareOrdinal(Name, other?.Name);

    /// <summary>A field of the content, length-prefixed so that no two contents encode alike
    /// (<c>-</c> for absent).</summary>
    private static string Field(string? value) => value is null ? "-;" : $"{value.Length}:{value};";

    /// <summary>128 bits of SHA-256, in hex: forging a second content with the same name takes
    /// about 2^128 tries.</summary>
    private static string Digest(string content) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(content)), 0, 16);
}

/// <summary>Everything one owner (a container) contributes to the kernel.</summary>
/// <paramref name="Bridge"/>: its elements in the bridge-family table (binding to its ports,
/// docs/binding.md).
public sealed record Fragment(string Owner, ImmutableArray<Element> Elements, ImmutableArray<RuleChain> Chains = default,
    ImmutableArray<WhaleWall.Firewall.Binding.BridgeElement> Bridge = default)
{
    public ImmutableArray<RuleChain> ChainsOrEmpty => Chains.IsDefault ? [] : Chains;

    public ImmutableArray<WhaleWall.Firewall.Binding.BridgeElement> BridgeOrEmpty => Bridge.IsDefault ? [] : Bridge;

    /// <summary>Holds nothing in either table: the owner is gone (or never had anything).</summary>
    public bool IsEmpty => Elements.IsEmpty && ChainsOrEmpty.IsEmpty && BridgeOrEmpty.IsEmpty;

    public static Fragment Empty(string owner) => new(owner, [], []);
}
