using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.State;

public static class ContainerStoreCommands
{
    /// <summary>Remember the facts WhaleWall enforces for a container (and the errors found
    /// in its labels). Answered with <see cref="ContainerStoreEvents.Recorded"/> once durable.</summary>
    public sealed record Record(ContainerFacts Facts, ImmutableArray<string> Errors, long Ticket);

    /// <summary>Remember the Docker networks as listed (deny-by-default mode rebuilds its gateway
    /// subnets from them while Docker is unreachable). Not answered.</summary>
    public sealed record RecordNetworks(ImmutableArray<DockerNetwork> Networks);

    /// <summary>The container is gone: forget it.</summary>
    public sealed record Forget(string Id);

    /// <summary>Docker events up to this time (ns since the epoch) have been handled.</summary>
    public sealed record Checkpoint(long DockerTimeNanos);

    /// <summary>Answered with <see cref="ContainerStoreEvents.Snapshot"/> once recovery is done.</summary>
    public sealed record GetState
    {
        public static readonly GetState Instance = new();
    }

    /// <summary>`whalewall flush`: forget everything. Answered with <see cref="ContainerStoreEvents.Cleared"/>.</summary>
    public sealed record Clear
    {
        public static readonly Clear Instance = new();
    }
}

public static class ContainerStoreEvents
{
    public sealed record Recorded(string Id, long Ticket);

    public sealed record Snapshot(ContainerStoreState State, long SequenceNr);

    public sealed record Cleared(int ContainersForgotten);
}
