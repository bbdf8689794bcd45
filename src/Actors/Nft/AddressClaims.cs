using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

/// <summary>A reused address starts clean (docs/binding.md): a container's port elements (what
/// its port may send) for an address go into the kernel only once no other owner holds that
/// address — the previous owner's inet elements are keyed by address, so its port must not pass
/// while they are there. Until then the new owner keeps only what it owns (its MAC and
/// addresses, refused from every port): its frames are dropped, it is never judged by the old
/// owner's rules. Pure.</summary>
internal static class AddressClaims
{
    /// <summary>The fragment as it may go in now: whole, or without its port elements when
    /// <paramref name="heldByOther"/> says another owner holds one of its addresses.</summary>
    public static Fragment Withhold(Fragment fragment, Func<BridgeElement, bool> heldByOther, out bool withheld)
    {
        var owned = fragment.BridgeOrEmpty.Where(e => e.Set is BridgeLayout.Owned4 or BridgeLayout.Owned6).ToDictionary(e => e.Key);
        withheld = fragment.BridgeOrEmpty.Any(e => OwnedKey(e) is { } key && owned.TryGetValue(key, out var mine) && heldByOther(mine));
        return withheld ? fragment with { Bridge = [.. fragment.BridgeOrEmpty.Where(e => !IsPortElement(e))] } : fragment;
    }

    /// <summary>For a batch of changes: held by another owner in the kernel before the batch
    /// (even one the batch removes: its flows are cut after that commit, then the new owner's port
    /// goes in) or by another fragment of the batch.</summary>
    public static Func<BridgeElement, bool> Against(KernelState kernel, IReadOnlyList<Fragment> batch, Fragment self)
    {
        var mine = kernel.Owners.TryGetValue(self.Owner, out var held) ? held.BridgeOrEmpty.ToHashSet() : [];
        return owned =>
        {
            var holders = kernel.BridgeReferences.TryGetValue(owned, out var n) ? n : 0;
            if (mine.Contains(owned)) holders--;
            return holders > 0 || batch.Any(f => f.Owner != self.Owner && f.BridgeOrEmpty.Contains(owned));
        };
    }

    /// <summary>For a whole table: held by another of the fragments.</summary>
    public static Func<BridgeElement, bool> Among(IReadOnlyDictionary<BridgeElement, List<string>> holders, Fragment self) =>
        owned => holders.TryGetValue(owned, out var owners) && owners.Any(o => o != self.Owner);

    /// <summary>Who holds each owned address, for <see cref="Among"/>.</summary>
    public static Dictionary<BridgeElement, List<string>> Holders(IEnumerable<Fragment> fragments)
    {
        var holders = new Dictionary<BridgeElement, List<string>>();
        foreach (var f in fragments)
            foreach (var e in f.BridgeOrEmpty.Where(e => e.Set is BridgeLayout.Owned4 or BridgeLayout.Owned6))
            {
                if (!holders.TryGetValue(e, out var list)) holders[e] = list = [];
                list.Add(f.Owner);
            }
        return holders;
    }

    /// <summary>The owned element's key for a port element's address ("port4 7 . mac . addr" ->
    /// "owned4 addr"), or null for other elements.</summary>
    private static string? OwnedKey(BridgeElement e) =>
        e.Set switch
        {
            BridgeLayout.Port4 => BridgeLayout.Owned4 + " " + e.Key[(e.Key.LastIndexOf(" . ", StringComparison.Ordinal) + 3)..],
            BridgeLayout.Port6 => BridgeLayout.Owned6 + " " + e.Key[(e.Key.LastIndexOf(" . ", StringComparison.Ordinal) + 3)..],
            _ => null,
        };

    private static bool IsPortElement(BridgeElement e) => e.Set is BridgeLayout.Ports or BridgeLayout.Port4 or BridgeLayout.Port6;
}
