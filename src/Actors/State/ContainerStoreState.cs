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

    /// <summary>The Docker networks as last listed, sorted by id.</summary>
    public ImmutableArray<DockerNetwork> Networks { get; init; } = [];

    /// <summary>The events a command causes (none when it changes nothing).</summary>
    public ImmutableArray<IStoredEvent> Decide(object command, long nowUnixMs) => command switch
    {
        Record r when Containers.TryGetValue(r.Facts.Id, out var known) &&
                      FactsComparer.Same(known.Facts, r.Facts) && known.Errors.SequenceEqual(r.Errors) => [],
        Record r => [new ContainerRecorded(r.Facts, r.Errors, nowUnixMs)],
        RecordNetworks n when FactsSchema.NetworkList.Same(Networks, ById(n.Networks)) => [],
        RecordNetworks n => [new NetworksRecorded(ById(n.Networks), nowUnixMs)],
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
        NetworksRecorded n => this with { Networks = n.Networks },
        EventsProcessed p => this with { LastEventNanos = Math.Max(LastEventNanos, p.DockerTimeNanos) },
        StateCleared => Empty,
        _ => this,
    };

    private static ImmutableArray<DockerNetwork> ById(ImmutableArray<DockerNetwork> networks) =>
        [.. networks.OrderBy(n => n.Id, StringComparer.Ordinal)];
}
