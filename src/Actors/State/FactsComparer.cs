using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.State;

/// <summary>The one equality of facts, used everywhere (the store, the container actor): two
/// facts are the same when every field the journal stores is the same (<see cref="FactsSchema"/>),
/// so what is compared and what is stored cannot drift apart. (The record's own equality
/// compares its collections by reference.)</summary>
public static class FactsComparer
{
    public static bool Same(ContainerFacts? a, ContainerFacts? b) => FactsSchema.Container.Same(a, b);
}
