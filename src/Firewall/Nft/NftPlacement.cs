using System.Collections.Immutable;

namespace WhaleWall.Firewall.Nft;

/// <summary>Where an element lives in the kernel. The compiler, the writer's bookkeeping,
/// explain and the flow cutter all speak of <em>logical</em> sets (<c>out4</c>: owner .
/// destination . proto . source port . destination port). The kernel holds each element in one
/// of two <em>physical</em> sets: an exact one — every field one value, the source port any —
/// in a plain hash set without the source port (<c>outx4</c>), anything with a range or a
/// CIDR in the interval set of the logical name. Why: deleting from a concatenated interval
/// set costs the kernel time that grows with the set (the whole set is cloned per
/// transaction: ~20 ms at 40,000 elements), from a hash set it does not; and most elements are
/// exact (<c>container:</c> peers, single ports, single addresses). An interval element of a
/// <em>sharded</em> set (<c>out*</c>) lives in one of <see cref="Shards"/> interval sets chosen by
/// the low bits of its owner's address (<c>out4_0</c> .. <c>out4_15</c>), so the clone a change
/// costs is of a sixteenth of the elements. Pure, and a bijection: <see cref="Logical"/> reads a
/// listed element back.</summary>
public static class NftPlacement
{
    /// <summary>Logical set -> its exact twin. Sets not listed keep every element in themselves
    /// (single-field sets are hash sets already; <c>pub*</c>/<c>in*</c> have a client range or a
    /// subnet in almost every element).</summary>
    private static readonly Dictionary<string, string> Twins = new(StringComparer.Ordinal)
    {
        ["out4"] = "outx4", ["out6"] = "outx6",
        ["outv4"] = "outvx4", ["outv6"] = "outvx6",
        ["peer4"] = "peerx4", ["peer6"] = "peerx6",
        ["outh4"] = "outhx4", ["outh6"] = "outhx6",
        ["local4"] = "localx4", ["local6"] = "localx6",
        ["localv4"] = "localvx4", ["localv6"] = "localvx6",
    };

    private static readonly Dictionary<string, string> Logicals = Twins.ToDictionary(p => p.Value, p => p.Key, StringComparer.Ordinal);

    /// <summary>The index of the source port in the 5-field flow key: an exact twin of a flow set
    /// leaves it out (its elements allow any source port).</summary>
    private const int SourcePort = 3;

    private static readonly Field AnyPort = new(FieldKind.Port, 0, ushort.MaxValue);

    /// <summary>How many interval sets a sharded set is split into (a power of two: the shard is
    /// the owner address's low bits, which the layout's dispatch masks with <see cref="ShardMask"/>).
    /// Each set of the table costs every libnftables transaction ~4 µs (its cache reads them all), so
    /// only the set that grows with every container's CIDR rules is sharded.</summary>
    public const int Shards = 16;

    public const int ShardMask = Shards - 1;

    /// <summary>Sharded logical sets -> the field holding the owner's address (the packet field the
    /// layout dispatches on: the source for <c>out*</c>).</summary>
    private static readonly Dictionary<string, int> ShardField = new(StringComparer.Ordinal) { ["out4"] = 0, ["out6"] = 0 };

    /// <summary>True for the logical sets kept in shards.</summary>
    public static bool IsSharded(string set) => ShardField.ContainsKey(set);

    /// <summary>The field of a sharded set's elements that must hold one owner address (null: not sharded).</summary>
    public static int? OwnerField(string set) => ShardField.TryGetValue(set, out var index) ? index : null;

    /// <summary>The physical set of one shard.</summary>
    public static string ShardName(string set, int shard) => set + "_" + shard.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The shard of an owner address: its low bits.</summary>
    public static int ShardOf(UInt128 address) => (int)(address & ShardMask);

    /// <summary>The physical sets that hold a logical set's elements: its shards or itself, and its exact twin.</summary>
    public static IEnumerable<string> PhysicalSets(string set)
    {
        if (IsSharded(set))
            for (var k = 0; k < Shards; k++) yield return ShardName(set, k);
        else yield return set;
        if (TwinOf(set) is { } twin) yield return twin;
    }

    /// <summary>Each shard's set -> its logical set.</summary>
    private static readonly Dictionary<string, string> ShardsOf = ShardField.Keys
        .SelectMany(set => Enumerable.Range(0, Shards).Select(k => (Shard: ShardName(set, k), Set: set)))
        .ToDictionary(p => p.Shard, p => p.Set, StringComparer.Ordinal);

    /// <summary>The logical set of a physical one (a shard's set; any other name is its own).</summary>
    public static string Unsharded(string physical) => ShardsOf.GetValueOrDefault(physical, physical);

    /// <summary>The exact twin of a logical set, if it has one.</summary>
    public static string? TwinOf(string set) => Twins.GetValueOrDefault(set);

    /// <summary>True for the physical hash twins (<c>outx4</c>, ...).</summary>
    public static bool IsTwin(string set) => Logicals.ContainsKey(set);

    /// <summary>The twin's key: the logical key, without the source port for flow keys.</summary>
    public static ImmutableArray<FieldKind> TwinKey(ImmutableArray<FieldKind> logical) =>
        logical.Length == 5 ? logical.RemoveAt(SourcePort) : logical;

    /// <summary>The physical set and fields of an element.</summary>
    public static (string Set, ImmutableArray<Field> Fields) Place(string set, ImmutableArray<Field> fields)
    {
        if (!Twins.TryGetValue(set, out var twin)) return (Interval(set, fields), fields);
        var flow = fields.Length == 5;
        for (var i = 0; i < fields.Length; i++)
        {
            var exact = flow && i == SourcePort ? fields[i] == AnyPort : fields[i].Lo == fields[i].Hi;
            if (!exact) return (Interval(set, fields), fields);
        }
        return (twin, flow ? fields.RemoveAt(SourcePort) : fields);
    }

    /// <summary>The interval set of an element that is not exact: its shard, for a sharded set.
    /// The owner field is one address by construction (the compiler keys these sets by the
    /// container's own address); anything else could not be found by the dispatch, so it is refused.</summary>
    private static string Interval(string set, ImmutableArray<Field> fields)
    {
        if (!ShardField.TryGetValue(set, out var index)) return set;
        if (fields.Length <= index || fields[index] is not { Kind: FieldKind.Ipv4 or FieldKind.Ipv6 } owner || owner.Lo != owner.Hi)
            throw new ArgumentException($"an element of {set} must hold one owner address in field {index}");
        return ShardName(set, ShardOf(owner.Lo));
    }

    /// <summary>A listed element of a physical set as the logical element it stands for.</summary>
    public static (string Set, IReadOnlyList<Field> Fields) Logical(string set, IReadOnlyList<Field> fields)
    {
        if (!Logicals.TryGetValue(set, out var logical)) return (Unsharded(set), fields);
        if (fields.Count != 4 || !NftSets.ByName.TryGetValue(logical, out var shape) || shape.Key.Length != 5) return (logical, fields);
        var full = fields.ToList();
        full.Insert(SourcePort, AnyPort);
        return (logical, full);
    }
}
