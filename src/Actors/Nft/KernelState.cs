using System.Collections.Immutable;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

/// <summary>What WhaleWall has put into the kernel: each owner's elements, and how many
/// owners hold each element (an address reused by a new container must survive the old
/// container's removal). Pure: planning a change returns the kernel operations and the
/// state after them; nothing is mutated.</summary>
public sealed record KernelState(
    ImmutableDictionary<string, ImmutableHashSet<Element>> Owners,
    ImmutableDictionary<Element, int> References)
{
    public static readonly KernelState Empty = new(
        ImmutableDictionary<string, ImmutableHashSet<Element>>.Empty,
        ImmutableDictionary<Element, int>.Empty);

    public sealed record Plan(ImmutableArray<Element> Deletes, ImmutableArray<Element> Adds, KernelState After)
    {
        public bool IsEmpty => Deletes.IsEmpty && Adds.IsEmpty;
    }

    public int ElementCount => References.Count;

    public ImmutableHashSet<Element> Of(string owner) =>
        Owners.TryGetValue(owner, out var set) ? set : ImmutableHashSet<Element>.Empty;

    /// <summary>Replaces the elements of several owners at once.</summary>
    public Plan Replace(IEnumerable<Fragment> fragments)
    {
        var owners = Owners.ToBuilder();
        var refs = References.ToBuilder();
        var deletes = new HashSet<Element>();
        var adds = new HashSet<Element>();
        foreach (var fragment in fragments)
        {
            var old = owners.TryGetValue(fragment.Owner, out var o) ? o : ImmutableHashSet<Element>.Empty;
            var next = fragment.Elements.ToImmutableHashSet();
            foreach (var e in old.Except(next))
            {
                var n = refs[e] - 1;
                if (n == 0) { refs.Remove(e); if (!adds.Remove(e)) deletes.Add(e); }
                else refs[e] = n;
            }
            foreach (var e in next.Except(old))
            {
                var n = refs.TryGetValue(e, out var c) ? c : 0;
                refs[e] = n + 1;
                if (n == 0 && !deletes.Remove(e)) adds.Add(e);
            }
            if (next.IsEmpty) owners.Remove(fragment.Owner); else owners[fragment.Owner] = next;
        }
        return new Plan([.. deletes], [.. adds], new KernelState(owners.ToImmutable(), refs.ToImmutable()));
    }
}
