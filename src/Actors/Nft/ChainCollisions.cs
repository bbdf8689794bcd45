using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

/// <summary>WhaleWall names its per-rule chains after their content, so two owners with equal
/// chains share one. Two different contents under one name would merge into one kernel chain
/// (one owner's log/verdict/queue running for the other's traffic): the owner that brings the
/// second content is refused. Pure.</summary>
public static class ChainCollisions
{
    /// <summary>Owners (in the given order; the first keeps the name) whose chains reuse a name
    /// with a different content, with the reason.</summary>
    public static Dictionary<string, string> Find(IEnumerable<Fragment> fragments)
    {
        var byName = new Dictionary<string, RuleChain>(StringComparer.Ordinal);
        var refused = new Dictionary<string, string>();
        foreach (var f in fragments)
        {
            if (Against(byName, f) is { } reason) { refused[f.Owner] = reason; continue; }
            foreach (var c in f.ChainsOrEmpty) byName[c.Name] = c;
        }
        return refused;
    }

    /// <summary>Why <paramref name="fragment"/> cannot join <paramref name="state"/>, or null.</summary>
    public static string? Against(KernelState state, Fragment fragment)
    {
        if (fragment.ChainsOrEmpty.IsEmpty) return null;
        var own = state.Owners.TryGetValue(fragment.Owner, out var old) ? old.ChainsOrEmpty : [];
        var byName = state.ChainReferences.Keys
            .Where(c => !own.Contains(c) || state.ChainReferences[c] > 1)
            .ToDictionary(c => c.Name, StringComparer.Ordinal);
        return Against(byName, fragment);
    }

    private static string? Against(IReadOnlyDictionary<string, RuleChain> byName, Fragment fragment)
    {
        foreach (var c in fragment.ChainsOrEmpty)
            if (byName.TryGetValue(c.Name, out var held) && held != c)
                return $"chain name {c.Name} is already used by a chain with other content (hash collision); refused";
        return null;
    }
}
