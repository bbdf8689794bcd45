using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.State;

/// <summary>What goes into the journal. Each type has a fixed, versioned name
/// (<see cref="StateSerializer"/>): never rename or change one; add a new version instead and
/// keep reading the old one.</summary>
public interface IStoredEvent;

public static class StoredEvents
{
    /// <summary>The facts of a container as WhaleWall enforces them (journal name
    /// <c>container-recorded.v2</c>, every field of <see cref="FactsSchema"/>; <c>.v1</c> entries
    /// are read through <see cref="StateUpcasters"/>). Facts, not compiled rules: a newer version
    /// compiles the same input with its own compiler.</summary>
    public sealed record ContainerRecorded(ContainerFacts Facts, ImmutableArray<string> Errors, long AtUnixMs) : IStoredEvent;

    /// <summary>The container is gone (<c>container-forgotten.v1</c>).</summary>
    public sealed record ContainerForgotten(string Id, long AtUnixMs) : IStoredEvent;

    /// <summary>Docker events up to this time were handled (<c>events-processed.v1</c>).</summary>
    public sealed record EventsProcessed(long DockerTimeNanos) : IStoredEvent;

    /// <summary>The Docker networks as last listed, sorted by id (<c>docker-networks-recorded.v1</c>):
    /// deny-by-default mode takes its gateway subnets from them while Docker is unreachable.</summary>
    public sealed record NetworksRecorded(ImmutableArray<DockerNetwork> Networks, long AtUnixMs) : IStoredEvent;

    /// <summary>`whalewall flush` (<c>state-cleared.v1</c>).</summary>
    public sealed record StateCleared(long AtUnixMs) : IStoredEvent;
}
