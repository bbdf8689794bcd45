using System.Collections.Immutable;
using System.Net;
using WhaleWall.Actors.Containers;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Metrics;

/// <summary>A container as metrics see it.</summary>
public sealed record ContainerEntry(string Id, ContainerFacts? Facts, ContainerState State)
{
    public string ShortId => Id.Length > 12 ? Id[..12] : Id;
    public string Name => Facts?.Name ?? "";
    public string Image => Facts?.Image ?? "";
    public string ComposeProject => Facts?.ComposeProject ?? "";
    public string ComposeService => Facts?.ComposeService ?? "";
}

/// <summary>What the daemon knows, as immutable snapshots that the HTTP thread reads while the
/// <see cref="MetricsActor"/> (the only writer) replaces them.</summary>
public sealed class DaemonView
{
    private volatile Snapshot current = new(ImmutableDictionary<string, ContainerEntry>.Empty,
        ImmutableDictionary<IPAddress, string>.Empty, false, false, null);

    public sealed record Snapshot(
        ImmutableDictionary<string, ContainerEntry> Containers,
        ImmutableDictionary<IPAddress, string> Owners,
        bool TableReady,
        bool DockerConnected,
        string? DockerError)
    {
        public bool Healthy => TableReady && DockerConnected;
    }

    public Snapshot Current => current;

    /// <summary>Replaces the snapshot; one writer at a time (the <see cref="MetricsActor"/>).</summary>
    public void Update(Func<Snapshot, Snapshot> change) => current = change(current);

    /// <summary>A container's new state (or its removal). Only its own addresses are touched.</summary>
    public void Apply(ContainerNotices.StateChanged m) => Update(s =>
    {
        var owners = s.Owners;
        if (s.Containers.TryGetValue(m.Id, out var old))
            foreach (var address in OwnersOf([old]).Keys)
                if (owners.TryGetValue(address, out var id) && id == m.Id) owners = owners.Remove(address);
        if (m.State == ContainerState.Gone) return s with { Containers = s.Containers.Remove(m.Id), Owners = owners };
        var entry = new ContainerEntry(m.Id, m.Facts, m.State);
        return s with { Containers = s.Containers.SetItem(m.Id, entry), Owners = owners.SetItems(OwnersOf([entry])) };
    });

    /// <summary>Address -> container id, from the containers' own addresses.</summary>
    internal static ImmutableDictionary<IPAddress, string> OwnersOf(IEnumerable<ContainerEntry> containers)
    {
        var owners = ImmutableDictionary.CreateBuilder<IPAddress, string>();
        foreach (var c in containers)
            if (c.Facts is { } facts && c.State != ContainerState.Unmanaged)
                foreach (var address in facts.Addresses)
                    owners[address] = c.Id;
        return owners.ToImmutable();
    }
}
