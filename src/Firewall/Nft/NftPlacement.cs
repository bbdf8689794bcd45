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
/// exact (<c>container:</c> peers, single ports, single addresses). Pure, and a bijection:
/// <see cref="Logical"/> reads a listed element back.</summary>
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
        if (!Twins.TryGetValue(set, out var twin)) return (set, fields);
        var flow = fields.Length == 5;
        for (var i = 0; i < fields.Length; i++)
        {
            var exact = flow && i == SourcePort ? fields[i] == AnyPort : fields[i].Lo == fields[i].Hi;
            if (!exact) return (set, fields);
        }
        return (twin, flow ? fields.RemoveAt(SourcePort) : fields);
    }

    /// <summary>A listed element of a physical set as the logical element it stands for.</summary>
    public static (string Set, IReadOnlyList<Field> Fields) Logical(string set, IReadOnlyList<Field> fields)
    {
        if (!Logicals.TryGetValue(set, out var logical)) return (set, fields);
        if (fields.Count != 4 || !NftSets.ByName.TryGetValue(logical, out var shape) || shape.Key.Length != 5) return (logical, fields);
        var full = fields.ToList();
        full.Insert(SourcePort, AnyPort);
        return (logical, full);
    }
}
