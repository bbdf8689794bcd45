using System.Collections.Immutable;
using System.Net;
using System.Net.NetworkInformation;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Nft;

/// <summary>No flow outlives the policy that allowed it (docs/binding.md): after the writer
/// commits a change, the conntrack entries of the changed containers' addresses that the new
/// table would not let start are deleted; a removed container's entries all go, and so do those
/// of an address a running container no longer holds (a network it left). Runs on the
/// writer's thread, one read of the conntrack table for every change since the last: once the
/// changes already waiting are applied when a running container's rules narrowed, within a
/// second when containers went (nothing runs behind their flows); at once whenever an address
/// whose flows wait goes to another owner, so a reused address's new owner never inherits a flow.</summary>
public sealed class FlowCutter(IConntrack conntrack, Func<IReadOnlySet<IPAddress>>? hostAddresses = null)
{
    private readonly Func<IReadOnlySet<IPAddress>> hostAddresses = hostAddresses ?? LocalAddresses;

    /// <summary>Returns how many entries were deleted.</summary>
    /// <param name="changes">each changed owner's fragment before and after the commit</param>
    /// <param name="after">every element in the kernel after the commit</param>
    public int Cut(IEnumerable<(Fragment Before, Fragment After)> changes, IEnumerable<Element> after)
    {
        var removed = new HashSet<IPAddress>();
        var narrowed = new HashSet<IPAddress>();
        foreach (var (before, next) in changes)
        {
            var addresses = AddressesOf(before);
            if (addresses.IsEmpty || !LostElements(before, next)) continue;
            // an address the owner no longer holds (a network it left) is removed like a gone
            // owner's: nothing allows its flows any more, and its next holder must not inherit them
            var kept = AddressesOf(next);
            foreach (var address in addresses) (kept.Contains(address) ? narrowed : removed).Add(address);
        }
        narrowed.ExceptWith(removed);
        if (removed.Count == 0 && narrowed.Count == 0) return 0;

        // one read of the table for every address of the change
        var flows = conntrack.FlowsOf([.. removed, .. narrowed]);
        bool Removed(ConntrackFlow f) => removed.Contains(f.Original.Source) || removed.Contains(f.Reply.Source);
        var deleted = conntrack.Delete(flows.Where(Removed).ToList());
        if (narrowed.Count == 0) return deleted;
        var index = new ElementIndex(after);
        var host = hostAddresses();
        return deleted + conntrack.Delete(StaleFlows.NotAllowed(flows.Where(f => !Removed(f)), host, index));
    }

    /// <summary>Whether a change from <paramref name="before"/> to <paramref name="after"/> can
    /// leave flows the new table no longer allows: the owner held addresses and lost elements
    /// (equal keys: an expiry renewal is no change; a widening takes nothing away).</summary>
    public static bool MayCut(Fragment before, Fragment after) =>
        !AddressesOf(before).IsEmpty && LostElements(before, after);

    private static bool LostElements(Fragment before, Fragment after) =>
        after.Elements.IsEmpty || before.Elements.Except(after.Elements).Any();

    /// <summary>The container addresses an owner holds (its managed elements: single addresses).</summary>
    public static ImmutableArray<IPAddress> AddressesOf(Fragment fragment) =>
    [
        .. fragment.Elements
            .Where(e => e.Set == NftSets.Managed(IpFamily.V4) || e.Set == NftSets.Managed(IpFamily.V6))
            .Where(e => e.Fields.Length == 1 && e.Fields[0].Lo == e.Fields[0].Hi)
            .Select(e => Addresses.ToAddress(e.Set == NftSets.Managed(IpFamily.V4) ? IpFamily.V4 : IpFamily.V6, e.Fields[0].Lo)),
    ];

    /// <summary>This namespace's own addresses (flows the host opened went through the output hook).</summary>
    private static IReadOnlySet<IPAddress> LocalAddresses() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses.Select(u => u.Address))
            .Select(a => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a)
            .ToHashSet();
}
