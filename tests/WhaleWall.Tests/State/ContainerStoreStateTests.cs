using System.Collections.Immutable;
using WhaleWall.Actors.State;
using Xunit;
using static WhaleWall.Actors.State.ContainerStoreCommands;
using Record = WhaleWall.Actors.State.ContainerStoreCommands.Record;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Tests.State;

/// <summary>Decide/Apply of the node's persistent state: pure, no Akka.</summary>
public class ContainerStoreStateTests
{
    private static ContainerStoreState Run(ContainerStoreState s, params object[] commands)
    {
        foreach (var c in commands)
            foreach (var e in s.Decide(c, 1000))
                s = s.Apply(e);
        return s;
    }

    [Fact]
    public void New_facts_are_recorded_and_the_same_facts_again_cause_no_event()
    {
        var a = Facts.Container("a", "198.18.128.2", "output: []\n");
        var events = ContainerStoreState.Empty.Decide(new Record(a, [], 1), 42);
        var recorded = Assert.IsType<ContainerRecorded>(Assert.Single(events));
        Assert.Equal(42, recorded.AtUnixMs);

        var s = ContainerStoreState.Empty.Apply(recorded);
        // an equal copy (other collection instances) is still the same facts
        var copy = a with { Labels = a.Labels.ToImmutableDictionary(), Networks = [.. a.Networks] };
        Assert.Empty(s.Decide(new Record(copy, [], 2), 43));
    }

    [Fact]
    public void Changed_labels_addresses_or_errors_are_recorded_again()
    {
        var a = Facts.Container("a", "198.18.128.2");
        var s = Run(ContainerStoreState.Empty, new Record(a, [], 1));

        Assert.Single(s.Decide(new Record(a with { Labels = a.Labels.SetItem("x", "y") }, [], 2), 1));
        Assert.Single(s.Decide(new Record(Facts.Container("a", "198.18.128.9"), [], 2), 1));
        Assert.Single(s.Decide(new Record(a, ["whalewall.rules: bad"], 2), 1));
        Assert.Single(s.Decide(new Record(a with { Running = false }, [], 2), 1));
    }

    [Fact]
    public void Forgetting_removes_a_known_container_and_ignores_an_unknown_one()
    {
        var a = Facts.Container("a", "198.18.128.2");
        var b = Facts.Container("b", "198.18.128.3");
        var s = Run(ContainerStoreState.Empty, new Record(a, [], 1), new Record(b, [], 2), new Forget(a.Id));

        Assert.Equal([b.Id], s.Containers.Keys);
        Assert.Empty(s.Decide(new Forget(a.Id), 1));
    }

    [Fact]
    public void Checkpoints_only_move_forward()
    {
        var s = Run(ContainerStoreState.Empty, new Checkpoint(500), new Checkpoint(300));
        Assert.Equal(500, s.LastEventNanos);
        Assert.Empty(s.Decide(new Checkpoint(500), 1));
    }

    [Fact]
    public void Clear_forgets_containers_and_checkpoint()
    {
        var s = Run(ContainerStoreState.Empty, new Record(Facts.Container("a", "198.18.128.2"), [], 1), new Checkpoint(5), Clear.Instance);
        Assert.Empty(s.Containers);
        Assert.Equal(0, s.LastEventNanos);
    }
}
