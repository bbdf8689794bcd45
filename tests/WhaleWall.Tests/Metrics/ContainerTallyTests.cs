using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Decide;
using Xunit;

namespace WhaleWall.Tests.Metrics;

public class ContainerTallyTests
{
    [Fact]
    public void A_change_moves_one_container_between_counts_and_a_removal_takes_it_out()
    {
        var tally = new ContainerTally();
        var a = new ContainerEntry("a", null, ContainerState.Enforced);
        var b = new ContainerEntry("b", null, ContainerState.Unmanaged);
        var c = new ContainerEntry("c", null, ContainerState.Enforced) { Mode = PolicyMode.Audit };
        tally.Add(a);
        tally.Add(b);
        tally.Add(c);
        Assert.Equal((2, 1, 2, 1), (tally.In(ContainerState.Enforced), tally.In(ContainerState.Unmanaged), tally.Managed, tally.Audited));

        // a goes fail-closed, c stops being managed (an unmanaged container is never counted as audited)
        tally.Remove(a);
        tally.Add(a with { State = ContainerState.FailClosed });
        tally.Remove(c);
        tally.Add(c with { State = ContainerState.Unmanaged });
        Assert.Equal((0, 1, 2, 1, 0), (tally.In(ContainerState.Enforced), tally.In(ContainerState.FailClosed),
            tally.In(ContainerState.Unmanaged), tally.Managed, tally.Audited));

        tally.Remove(b);
        tally.Add(null); // gone: nothing in its place
        Assert.Equal((1, 1, 1), (tally.In(ContainerState.Unmanaged), tally.In(ContainerState.FailClosed), tally.Managed));
    }
}
