using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Flows;

/// <summary>What a learned flow went to: a container (by the name a <c>container:</c> rule
/// would use), a host name (the container's own DNS answer gave the address), or an address.</summary>
public enum DestinationKind { Container, Host, Address }

/// <summary>One aggregate: destination, protocol and destination port (for ICMP the type).</summary>
public sealed record FlowKey(DestinationKind Kind, string Destination, L4Proto Proto, ushort Port);

/// <summary>When a flow to the key was first and last seen (Unix ms), how many new flows, and
/// how many of them the policy would have dropped (audit mode).</summary>
public sealed record FlowStats(long FirstMs, long LastMs, long Count, long AuditDrops);

/// <summary>The flows of one owner: a compose service (<c>project/service</c>: its replicas
/// together) or a container name. <see cref="Containers"/>: the container names seen for it
/// (bounded); <see cref="Overflow"/>: new keys refused once <see cref="FlowLimits.PerOwner"/> were held.</summary>
public sealed record OwnerFlows(string Owner, string? Project, string? Service, ImmutableSortedSet<string> Containers,
    ImmutableDictionary<FlowKey, FlowStats> Flows, long Overflow)
{
    public bool Matches(string name) =>
        Owner == name || Service == name || Containers.Contains(name.TrimStart('/'));
}

public sealed record FlowLimits(int PerOwner, int Owners, int NamesPerOwner)
{
    public static readonly FlowLimits Default = new(PerOwner: 256, Owners: 1024, NamesPerOwner: 16);
}

/// <summary>A flow as the recorder attributes it: whose (owner), to what, when, audited drop or not.</summary>
public sealed record ObservedFlow(string Owner, string? Project, string? Service, string Container, FlowKey Key, long AtMs, bool AuditDrop);

/// <summary>Every owner's flows: bounded (per owner, owners, names), so no amount of traffic
/// grows it without limit. Pure; each <see cref="Record"/> returns the new log.</summary>
public sealed record FlowLog(ImmutableDictionary<string, OwnerFlows> Owners)
{
    public static readonly FlowLog Empty = new(ImmutableDictionary<string, OwnerFlows>.Empty.WithComparers(StringComparer.Ordinal));

    public enum Outcome { Recorded, Overflow }

    /// <summary>The owner key of a container: its compose service when it has one, else its name.</summary>
    public static string OwnerOf(ContainerFacts facts) =>
        facts.ComposeProject is { } p && facts.ComposeService is { } s ? $"{p}/{s}" : facts.Name.TrimStart('/');

    public (FlowLog Log, Outcome Outcome, OwnerFlows Owner) Record(ObservedFlow flow, FlowLimits limits)
    {
        var owners = Owners;
        if (!owners.TryGetValue(flow.Owner, out var owner))
        {
            if (owners.Count >= limits.Owners)
            {
                // the owner seen longest ago makes room
                var oldest = owners.Values.MinBy(o => o.Flows.Values.Select(f => f.LastMs).DefaultIfEmpty(0).Max())!;
                owners = owners.Remove(oldest.Owner);
            }
            owner = new OwnerFlows(flow.Owner, flow.Project, flow.Service, ImmutableSortedSet<string>.Empty.WithComparer(StringComparer.Ordinal),
                ImmutableDictionary<FlowKey, FlowStats>.Empty, 0);
        }
        var names = owner.Containers.Contains(flow.Container) || owner.Containers.Count >= limits.NamesPerOwner
            ? owner.Containers : owner.Containers.Add(flow.Container);
        Outcome outcome;
        if (owner.Flows.TryGetValue(flow.Key, out var stats))
        {
            owner = owner with
            {
                Flows = owner.Flows.SetItem(flow.Key, stats with
                {
                    LastMs = Math.Max(stats.LastMs, flow.AtMs),
                    Count = stats.Count + 1,
                    AuditDrops = stats.AuditDrops + (flow.AuditDrop ? 1 : 0),
                }),
                Containers = names,
            };
            outcome = Outcome.Recorded;
        }
        else if (owner.Flows.Count >= limits.PerOwner)
        {
            owner = owner with { Overflow = owner.Overflow + 1, Containers = names };
            outcome = Outcome.Overflow;
        }
        else
        {
            owner = owner with
            {
                Flows = owner.Flows.Add(flow.Key, new FlowStats(flow.AtMs, flow.AtMs, 1, flow.AuditDrop ? 1 : 0)),
                Containers = names,
            };
            outcome = Outcome.Recorded;
        }
        return (new FlowLog(owners.SetItem(owner.Owner, owner)), outcome, owner);
    }

    /// <summary>An owner's record as stored (replay, snapshot): replaces what was there.</summary>
    public FlowLog Put(OwnerFlows owner) => new(Owners.SetItem(owner.Owner, owner));

    public FlowLog Forget(string owner) => new(Owners.Remove(owner));

    /// <summary>The owners a name given on the command line means: an owner key, a compose
    /// service, or a container name seen.</summary>
    public IReadOnlyList<OwnerFlows> Find(string name) =>
        [.. Owners.Values.Where(o => o.Matches(name)).OrderBy(o => o.Owner, StringComparer.Ordinal)];
}
