using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Decide;

/// <summary>A part of a container's networking whose traffic WhaleWall's table (hooks of the
/// host's network namespace) does not see, and why. <paramref name="Network"/>: the
/// attachment's network name, or null when it is the whole container (network mode).
/// <paramref name="Excluded"/>: its addresses are kept out of every set (they are not the
/// container's on the host's paths, or not its own at all); false only for drivers WhaleWall
/// does not know, whose traffic may cross the host's hooks and is filtered where it does.</summary>
public sealed record InvisibleAttachment(string? Network, string Reason, bool Excluded = true);

/// <summary>Which of a container's attachments the host's forward/input/output hooks see.
/// <list type="bullet">
/// <item><c>network_mode: host</c>: the host's own namespace; the container has no address of
/// its own and nothing of it is put in the sets (that would catch the host's traffic).</item>
/// <item><c>network_mode: container:&lt;id&gt;</c>: another container's namespace, filtered as
/// that container's traffic, by that container's labels.</item>
/// <item>macvlan, ipvlan: traffic leaves through the parent interface, below the host's IP
/// stack.</item>
/// <item>overlay (Swarm): traffic between containers on it stays inside the overlay's own
/// namespace (VXLAN); a task's traffic to the outside crosses <c>docker_gwbridge</c>, a bridge
/// attachment of its own, which is seen.</item>
/// <item><c>bridge</c> is seen; <c>null</c> (network "none") carries nothing; an empty driver
/// (not known yet, e.g. a failed network inspect) counts as bridge.</item>
/// <item>Any other driver (a plugin): WhaleWall cannot tell. Reported, but its addresses stay
/// in the sets, so whatever does cross the host's hooks is still filtered.</item>
/// </list>
/// Pure.</summary>
public static class Visibility
{
    public static ImmutableArray<InvisibleAttachment> Invisible(ContainerFacts facts)
    {
        if (facts.NetworkMode is "host")
            return [new(null, "network_mode host: it shares the host's network namespace, so its traffic is the host's own " +
                              "and never passes WhaleWall's container rules")];
        if (facts.NetworkMode is { } mode && mode.StartsWith("container:", StringComparison.Ordinal))
            return [new(null, $"network_mode {mode}: it uses another container's network namespace, so its traffic is filtered " +
                              "(if at all) by that container's labels, not by its own")];
        var invisible = ImmutableArray.CreateBuilder<InvisibleAttachment>();
        foreach (var n in facts.Networks)
            if (Why(n) is { } why) invisible.Add(why);
        return invisible.ToImmutable();
    }

    private static InvisibleAttachment? Why(NetworkAttachment n) => n.Driver switch
    {
        "" or "bridge" or "null" => null,
        "macvlan" or "ipvlan" => new(n.Name, $"network {n.Name} ({n.Driver}): its traffic leaves through the parent interface " +
                                             "and never crosses the host's forward hook"),
        "overlay" => new(n.Name, $"network {n.Name} (overlay): traffic to other containers on it stays inside the overlay's " +
                                 "own namespace (traffic to the outside, through docker_gwbridge, is filtered)"),
        "host" => new(n.Name, $"network {n.Name} (host): the host's own namespace"),
        _ => new(n.Name, $"network {n.Name} (driver {n.Driver}): WhaleWall does not know whether this driver's traffic " +
                         "crosses the host's hooks; it is filtered only where it does", Excluded: false),
    };

    /// <summary>True when every address of the container may be in the sets (nothing excluded).</summary>
    public static bool AllFilterable(ContainerFacts facts) =>
        !facts.SharesAnotherNamespace && facts.Networks.All(n => Why(n) is not { Excluded: true });

    /// <summary>The facts with only the attachments whose addresses may go into the sets: what
    /// the compiler works with. The same instance when nothing is excluded.</summary>
    public static ContainerFacts Filterable(ContainerFacts facts)
    {
        if (AllFilterable(facts)) return facts;
        if (facts.SharesAnotherNamespace) return facts with { Networks = [] };
        return facts with { Networks = [.. facts.Networks.Where(n => Why(n) is not { Excluded: true })] };
    }
}
