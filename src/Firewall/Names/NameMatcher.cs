namespace WhaleWall.Firewall.Names;

/// <summary>
/// Many patterns, one question: does a name match any of them? Exact names sit in a hash
/// set; wildcard patterns are keyed by their fixed suffix, so a query walks the name's own
/// suffixes (at most 127 of them) and looks each up once: the cost depends on the name, not
/// on the number of patterns.
/// </summary>
public sealed class NameMatcher
{
    public static readonly NameMatcher Empty = new([]);

    private readonly HashSet<string> exact = new(StringComparer.Ordinal);
    // suffix -> (any depth?, set of exact label counts for *.*. forms)
    private readonly Dictionary<string, (bool AnyDepth, HashSet<int> Singles)> wildcards = new(StringComparer.Ordinal);

    private readonly Dictionary<string, (bool AnyDepth, HashSet<int> Singles)>.AlternateLookup<ReadOnlySpan<char>> suffixLookup;

    public IReadOnlyList<NamePattern> Patterns { get; }

    public NameMatcher(IEnumerable<NamePattern> patterns)
    {
        Patterns = patterns.Distinct().ToArray();
        foreach (var p in Patterns)
        {
            if (p.IsExact)
            {
                exact.Add(p.Suffix.Value);
                continue;
            }
            if (!wildcards.TryGetValue(p.Suffix.Value, out var entry))
                entry = (false, new HashSet<int>());
            if (p.AnyDepth) entry.AnyDepth = true;
            else entry.Singles.Add(p.SingleLabels);
            wildcards[p.Suffix.Value] = entry;
        }
        suffixLookup = wildcards.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public bool IsEmpty => Patterns.Count == 0;

    public bool Matches(DnsName name)
    {
        if (exact.Contains(name.Value)) return true;
        if (wildcards.Count == 0) return false;
        // walk the proper suffixes: "a.b.c" -> "b.c" (1 label before it), "c" (2 labels)
        var value = name.Value;
        var depth = 0;
        for (var i = value.IndexOf('.'); i >= 0; i = value.IndexOf('.', i + 1))
        {
            depth++;
            if (suffixLookup.TryGetValue(value.AsSpan(i + 1), out var entry)
                && (entry.AnyDepth || entry.Singles.Contains(depth)))
                return true;
        }
        return false;
    }
}
