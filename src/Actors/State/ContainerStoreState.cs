using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.State.ContainerStoreCommands;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Actors.State;

/// <summary>One container as remembered: its facts and the errors its labels had.</summary>
public sealed record StoredContainer(ContainerFacts Facts, ImmutableArray<string> Errors, long UpdatedUnixMs);

/// <summary>What the journal says WhaleWall enforces on this node. Immutable; changed only by
/// <see cref="Apply"/>, and <see cref="Decide"/> says which events a command causes.</summary>
public sealed record ContainerStoreState(ImmutableSortedDictionary<string, StoredContainer> Containers, long LastEventNanos)
{
    public static readonly ContainerStoreState Empty = new(ImmutableSortedDictionary<string, StoredContainer>.Empty, 0);

    /// <summary>The events a command causes (none when it changes nothing).</summary>
    public ImmutableArray<IStoredEvent> Decide(object command, long nowUnixMs) => command switch
    {
        Record r when Containers.TryGetValue(r.Facts.Id, out var known) &&
                      FactsComparer.Same(known.Facts, r.Facts) && known.Errors.SequenceEqual(r.Errors) => [],
        Record r => [new ContainerRecorded(r.Facts, r.Errors, nowUnixMs)],
        Forget f when !Containers.ContainsKey(f.Id) => [],
        Forget f => [new ContainerForgotten(f.Id, nowUnixMs)],
        Checkpoint c when c.DockerTimeNanos <= LastEventNanos => [],
        Checkpoint c => [new EventsProcessed(c.DockerTimeNanos)],
        Clear => [new StateCleared(nowUnixMs)],
        _ => [],
    };

    public ContainerStoreState Apply(IStoredEvent e) => e switch
    {
        ContainerRecorded r => this with { Containers = Containers.SetItem(r.Facts.Id, new StoredContainer(r.Facts, r.Errors, r.AtUnixMs)) },
        ContainerForgotten f => this with { Containers = Containers.Remove(f.Id) },
        EventsProcessed p => this with { LastEventNanos = Math.Max(LastEventNanos, p.DockerTimeNanos) },
        StateCleared => Empty,
        _ => this,
    };
}

/// <summary>Value equality of facts (the record's own compares its collections by reference).</summary>
public static class FactsComparer
{
    public static bool Same(ContainerFacts? a, ContainerFacts? b)
    {
        if (a is null || b is null) return a is null && b is null;
        return a.Id == b.Id && a.Name == b.Name && a.Running == b.Running &&
               a.Labels.Count == b.Labels.Count &&
               a.Labels.All(kv => b.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value) &&
               a.Networks.SequenceEqual(b.Networks) && a.Ports.SequenceEqual(b.Ports);
    }
}
