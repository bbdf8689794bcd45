using WhaleWall.Actors.Containers;

namespace WhaleWall.Actors.Metrics;

/// <summary>How many containers are in each state, under policy and audited: kept by adding
/// and removing entries as they change, so a change costs the same at any number of containers.</summary>
public sealed class ContainerTally
{
    private readonly Dictionary<ContainerState, int> byState = new();

    public int Managed { get; private set; }
    public int Audited { get; private set; }

    public int In(ContainerState state) => byState.GetValueOrDefault(state);

    public void Add(ContainerEntry? entry) => Count(entry, +1);

    public void Remove(ContainerEntry? entry) => Count(entry, -1);

    private void Count(ContainerEntry? entry, int sign)
    {
        if (entry is null) return;
        byState[entry.State] = byState.GetValueOrDefault(entry.State) + sign;
        if (entry.State != ContainerState.Unmanaged) Managed += sign;
        if (entry.Audited) Audited += sign;
    }
}
