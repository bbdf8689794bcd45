using System.Collections.Immutable;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

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

    /// <summary>The bridge table's elements (binding), counted like the inet ones.</summary>
    public ImmutableDictionary<BridgeElement, int> BridgeReferences { get; init; } = ImmutableDictionary<BridgeElement, int>.Empty;

    /// <summary>Interval elements whose owner's address is under policy no more: still in the
    /// kernel, wanted by nobody, deleted later in small batches when the writer is idle
    /// (<see cref="Collect"/>). Deleting from an interval set costs time that grows with the set;
    /// a container that goes should not pay it on the event path, and while its address is not in
    /// <c>managed*</c> no rule reads what it left (egress and ingress are entered only for managed
    /// addresses). An address under policy again gets them deleted first, in its own transaction,
    /// so a new container never inherits them. Only the sets read through the owner's own
    /// address qualify (<see cref="Deferred"/>): <c>peer*</c> opens the <em>destination</em>,
    /// so it is always deleted at once.</summary>
    public ImmutableHashSet<Element> Garbage { get; init; } = ImmutableHashSet<Element>.Empty;

    /// <summary>The sets whose elements may wait for collection, and the field holding the
    /// owner's address (the one every rule reading the set is entered through).</summary>
    private static readonly Dictionary<string, int> Deferred = new(StringComparer.Ordinal)
    {
        ["out4"] = 0, ["out6"] = 0, ["local4"] = 0, ["local6"] = 0,
        ["pub4"] = 1, ["pub6"] = 1, ["in4"] = 1, ["in6"] = 1,
    };

    /// <summary>The managed* element of the owner address of a deferrable element (null: not deferrable).</summary>
    private static Element? OwnerOf(Element e)
    {
        if (e.Expires is not null || NftPlacement.IsTwin(e.PhysicalSet) || !Deferred.TryGetValue(e.Set, out var index)) return null;
        var field = e.Fields[index];
        if (field.Lo != field.Hi) return null;
        return new Element(NftSets.Managed(field.Kind == FieldKind.Ipv4 ? IpFamily.V4 : IpFamily.V6), [field]);
    }

    /// <summary>An element that expires within this margin may be gone from the kernel
    /// already: it is not deleted in the batch (that could fail it) but after it
    /// (<see cref="Plan.Lingering"/>).</summary>
    public static readonly TimeSpan ExpiryMargin = TimeSpan.FromSeconds(2);

    public sealed record Plan(
        ImmutableArray<Element> Deletes,
        ImmutableArray<Element> Adds,
        ImmutableArray<RuleChain> ChainDeletes,
        ImmutableArray<RuleChain> ChainAdds,
        KernelState After)
    {
        public ImmutableArray<BridgeElement> BridgeDeletes { get; init; } = [];
        public ImmutableArray<BridgeElement> BridgeAdds { get; init; } = [];

        /// <summary>Elements nobody holds any more that expire within <see cref="ExpiryMargin"/>:
        /// not in <see cref="Deletes"/> (the kernel may have timed them out, and a delete of an
        /// absent element fails the whole batch), but they must not wait for their timeout either
        /// (a new container on the address would inherit them): the writer deletes them after
        /// the commit, where a failure only means they are gone already.</summary>
        public ImmutableArray<Element> Lingering { get; init; } = [];

        public bool IsEmpty => Deletes.IsEmpty && Adds.IsEmpty && ChainDeletes.IsEmpty && ChainAdds.IsEmpty &&
                               BridgeDeletes.IsEmpty && BridgeAdds.IsEmpty;
    }

    public int ElementCount => References.Count;

    /// <summary>Replaces the fragments of several owners at once.</summary>
    /// <param name="renewByAdd">the kernel restarts a present element's clock on an add with
    /// <c>expires</c> (<see cref="RenewalProbe"/>): a renewal is an add alone</param>
    public Plan Replace(IEnumerable<Fragment> fragments, DateTimeOffset? now = null, bool renewByAdd = false)
    {
        var owners = Owners.ToBuilder();
        var elements = new Counter<Element>(References);
        var chains = new Counter<RuleChain>(ChainReferences);
        var bridge = new Counter<BridgeElement>(BridgeReferences);
        var refreshes = new Dictionary<string, (Element Old, Element New)>();
        foreach (var fragment in fragments)
        {
            var old = owners.TryGetValue(fragment.Owner, out var o) ? o : Fragment.Empty(fragment.Owner);
            elements.Replace(old.Elements, fragment.Elements);
            chains.Replace(old.ChainsOrEmpty, fragment.ChainsOrEmpty);
            bridge.Replace(old.BridgeOrEmpty, fragment.BridgeOrEmpty);
            // DNS addresses still wanted with a later expiry: the kernel's timeout is renewed
            if (old.Elements.Any(e => e.Expires is not null))
            {
                var before = old.Elements.Where(e => e.Expires is not null).ToDictionary(e => e.Key);
                foreach (var e in fragment.Elements)
                    if (e.Expires is { } until && before.TryGetValue(e.Key, out var was) && until > was.Expires)
                        refreshes[e.Key] = (was, e);
            }
            if (fragment.IsEmpty) owners.Remove(fragment.Owner);
            else owners[fragment.Owner] = fragment;
        }
        var at = now ?? DateTimeOffset.MinValue;
        bool Present(Element e) => e.Expires is not { } until || until - at > ExpiryMargin;
        var deletes = elements.Deletes.Where(Present).ToList();
        var lingering = elements.Deletes.Where(e => !Present(e)).ToImmutableArray();
        var adds = elements.Adds.ToList();
        var refs = elements.ToImmutable();
        var garbage = Garbage.ToBuilder();
        // wanted again while still in the kernel: nothing to do
        if (garbage.Count > 0) adds.RemoveAll(garbage.Remove);
        // an address under policy again: what its old owner left goes, before the new one's adds
        if (garbage.Count > 0 && adds.Any(IsManaged))
        {
            var back = adds.Where(IsManaged).ToHashSet();
            var stale = garbage.Where(g => OwnerOf(g) is { } owner && back.Contains(owner)).ToList();
            garbage.ExceptWith(stale);
            deletes.AddRange(stale);
        }
        // an address no longer under policy: its interval elements wait for collection
        deletes.RemoveAll(e =>
        {
            if (OwnerOf(e) is not { } owner || refs.ContainsKey(owner)) return false;
            garbage.Add(e);
            return true;
        });
        foreach (var (was, next) in refreshes.Values)
        {
            if (!renewByAdd && Present(was)) deletes.Add(was); // delete + add in one batch renews the timeout
            adds.Add(next);
            refs = refs.Remove(was).Add(next, refs.TryGetValue(was, out var n) ? n : 1);
        }
        return new Plan([.. deletes], [.. adds], [.. chains.Deletes], [.. chains.Adds],
            new KernelState(owners.ToImmutable(), refs, chains.ToImmutable()) { BridgeReferences = bridge.ToImmutable(), Garbage = garbage.ToImmutable() })
        {
            BridgeDeletes = [.. bridge.Deletes],
            BridgeAdds = [.. bridge.Adds],
            Lingering = lingering,
        };
    }

    private static bool IsManaged(Element e) => e.Set == NftSets.Managed(IpFamily.V4) || e.Set == NftSets.Managed(IpFamily.V6);

    /// <summary>Deletes at most <paramref name="max"/> of the <see cref="Garbage"/>.</summary>
    public Plan Collect(int max)
    {
        var batch = Garbage.Order().Take(max).ToImmutableArray();
        return new Plan(batch, [], [], [], this with { Garbage = Garbage.Except(batch) });
    }

    /// <summary>Reference counts with the kernel operations they imply.</summary>
    private sealed class Counter<T>(ImmutableDictionary<T, int> start) where T : notnull
    {
        private readonly ImmutableDictionary<T, int>.Builder refs = start.ToBuilder();
        public HashSet<T> Deletes { get; } = [];
        public HashSet<T> Adds { get; } = [];

        public void Replace(IEnumerable<T> before, IEnumerable<T> after)
        {
            if (!before.Any())
            {
                // a new owner (every owner at start-up): only additions; an owner holds a few
                // elements, so a repeated one is found by looking back (no set per owner)
                var items = after as IReadOnlyList<T> ?? after.ToList();
                HashSet<T>? seen = items.Count > 16 ? [] : null;
                for (var i = 0; i < items.Count; i++)
                {
                    var item = items[i];
                    if (seen is not null ? !seen.Add(item) : Repeats(items, i)) continue;
                    var n = refs.TryGetValue(item, out var c) ? c : 0;
                    refs[item] = n + 1;
                    if (n == 0 && !Deletes.Remove(item)) Adds.Add(item);
                }
                return;
            }
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

        private static bool Repeats(IReadOnlyList<T> items, int index)
        {
            for (var j = 0; j < index; j++)
                if (EqualityComparer<T>.Default.Equals(items[j], items[index])) return true;
            return false;
        }
    }
}
