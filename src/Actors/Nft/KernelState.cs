using System.Collections.Immutable;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

/// <summary>What WhaleWall has put into the kernel: each owner's fragment, and how many
/// owners hold each element and chain (an address reused by a new container must survive
/// the old container's removal; equal rule chains are shared). Pure: planning a change
/// returns the kernel operations and the state after them; nothing is mutated.</summary>
public sealed record KernelState(
    ImmutableDictionary<string, Fragment> Owners,
    ImmutableDictionary<Element, int> References,
    ImmutableDictionary<RuleChain, int> ChainReferences)
{
    public static readonly KernelState Empty = new(
        ImmutableDictionary<string, Fragment>.Empty,
        ImmutableDictionary<Element, int>.Empty,
        ImmutableDictionary<RuleChain, int>.Empty);

    public sealed record Plan(
        ImmutableArray<Element> Deletes,
        ImmutableArray<Element> Adds,
        ImmutableArray<RuleChain> ChainDeletes,
        ImmutableArray<RuleChain> ChainAdds,
        KernelState After)
    {
        public bool IsEmpty => Deletes.IsEmpty && Adds.IsEmpty && ChainDeletes.IsEmpty && ChainAdds.IsEmpty;
    }

    public int ElementCount => References.Count;

    /// <summary>Replaces the fragments of several owners at once.</summary>
    public Plan Replace(IEnumerable<Fragment> fragments)
    {
        var owners = Owners.ToBuilder();
        var elements = new Counter<Element>(References);
        var chains = new Counter<RuleChain>(ChainReferences);
        foreach (var fragment in fragments)
        {
            var old = owners.TryGetValue(fragment.Owner, out var o) ? o : Fragment.Empty(fragment.Owner);
            elements.Replace(old.Elements, fragment.Elements);
            chains.Replace(old.ChainsOrEmpty, fragment.ChainsOrEmpty);
            if (fragment.Elements.IsEmpty && fragment.ChainsOrEmpty.IsEmpty) owners.Remove(fragment.Owner);
            else owners[fragment.Owner] = fragment;
        }
        return new Plan([.. elements.Deletes], [.. elements.Adds], [.. chains.Deletes], [.. chains.Adds],
            new KernelState(owners.ToImmutable(), elements.ToImmutable(), chains.ToImmutable()));
    }

    /// <summary>Reference counts with the kernel operations they imply.</summary>
    private sealed class Counter<T>(ImmutableDictionary<T, int> start) where T : notnull
    {
        private readonly ImmutableDictionary<T, int>.Builder refs = start.ToBuilder();
        public HashSet<T> Deletes { get; } = [];
        public HashSet<T> Adds { get; } = [];

        public void Replace(IEnumerable<T> before, IEnumerable<T> after)
        {
            var (old, next) = (before.ToHashSet(), after.ToHashSet());
            foreach (var item in old.Except(next))
            {
                var n = refs[item] - 1;
                if (n > 0) { refs[item] = n; continue; }
                refs.Remove(item);
                if (!Adds.Remove(item)) Deletes.Add(item);
            }
            foreach (var item in next.Except(old))
            {
                var n = refs.TryGetValue(item, out var c) ? c : 0;
                refs[item] = n + 1;
                if (n == 0 && !Deletes.Remove(item)) Adds.Add(item);
            }
        }

        public ImmutableDictionary<T, int> ToImmutable() => refs.ToImmutable();
    }
}
