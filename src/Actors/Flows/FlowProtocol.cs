using System.Collections.Immutable;
using System.Net;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Flows;

namespace WhaleWall.Actors.Flows;

public static class FlowCommands
{
    /// <summary>New flows from the kernel (the reader thread); <paramref name="Lost"/>: some were lost before these.</summary>
    public sealed record Seen(IReadOnlyList<NewFlow> Flows, bool Lost, long AtMs);

    /// <summary>The DNS proxy released these addresses for <paramref name="Name"/> to the container.</summary>
    public sealed record Resolved(string ContainerId, string Name, IReadOnlyList<(IPAddress Address, TimeSpan Ttl)> Addresses);

    /// <summary>Replies <see cref="FlowEvents.Log"/>.</summary>
    public sealed record Get
    {
        public static readonly Get Instance = new();
    }

    /// <summary>`whalewall flush`: forget every flow. Replies <see cref="FlowEvents.Cleared"/>.</summary>
    public sealed record Clear
    {
        public static readonly Clear Instance = new();
    }

    /// <summary>Timer: journal what changed.</summary>
    internal sealed record Flush
    {
        public static readonly Flush Instance = new();
    }
}

public static class FlowEvents
{
    public sealed record Log(FlowLog Flows, long SequenceNr);

    public sealed record Cleared(int Owners);
}

/// <summary>Journal entries of the flow recorder (<c>flows-recorded.v1</c>): the full records
/// of the owners that changed (replay overwrites, so it is idempotent).</summary>
public sealed record FlowsRecorded(ImmutableArray<OwnerFlows> Owners) : IStoredEvent;

/// <summary>All flows forgotten (<c>flows-cleared.v1</c>).</summary>
public sealed record FlowsCleared(long AtUnixMs) : IStoredEvent;

/// <summary>Snapshot of the flow log (<c>flows-snapshot.v1</c>).</summary>
public sealed record FlowsSnapshot(FlowLog Log) : IStoredEvent;

/// <summary>Registry key of the flow recorder.</summary>
public sealed class FlowRecorder { }
