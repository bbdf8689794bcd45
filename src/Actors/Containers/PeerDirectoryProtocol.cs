using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Containers;

public static class PeerDirectoryCommands
{
    /// <summary>The latest facts of a container (or its removal when Facts is null).</summary>
    public sealed record Publish(string Id, ContainerFacts? Facts);

    /// <summary>The sender wants the containers matching <paramref name="References"/> (names,
    /// or compose services of <paramref name="Project"/>), now and whenever they change.</summary>
    public sealed record Watch(ImmutableHashSet<string> References, string? Project);
}

public static class PeerDirectoryEvents
{
    public sealed record PeersChanged(ImmutableArray<ContainerFacts> Peers);
}
