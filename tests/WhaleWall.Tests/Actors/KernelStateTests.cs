using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Nft;
using Xunit;

namespace WhaleWall.Tests.Actors;

public class KernelStateTests
{
    private static Element E(string set, int n) => new(set, [new Field(FieldKind.Ipv4, (UInt128)n, (UInt128)n)]);

    [Fact]
    public void Replacing_an_owner_deletes_what_it_no_longer_has_and_adds_what_is_new()
    {
        var state = KernelState.Empty.Replace([new Fragment("a", [E("managed4", 1), E("managed4", 2)])]).After;
        var plan = state.Replace([new Fragment("a", [E("managed4", 2), E("managed4", 3)])]);
        Assert.Equal([E("managed4", 1)], plan.Deletes.ToArray());
        Assert.Equal([E("managed4", 3)], plan.Adds.ToArray());
    }

    [Fact]
    public void An_element_shared_by_two_owners_stays_until_both_let_go()
    {
        var state = KernelState.Empty.Replace([new Fragment("old", [E("managed4", 7)])]).After;
        var plan = state.Replace([new Fragment("new", [E("managed4", 7)])]);
        Assert.True(plan.IsEmpty);
        var removal = plan.After.Replace([Fragment.Empty("old")]);
        Assert.True(removal.IsEmpty);
        Assert.Equal(1, removal.After.ElementCount);
        Assert.Equal([E("managed4", 7)], removal.After.Replace([Fragment.Empty("new")]).Deletes.ToArray());
    }

    [Fact]
    public void Moving_an_element_between_owners_in_one_batch_touches_nothing()
    {
        var state = KernelState.Empty.Replace([new Fragment("a", [E("managed4", 9)])]).After;
        var plan = state.Replace([Fragment.Empty("a"), new Fragment("b", [E("managed4", 9)])]);
        Assert.True(plan.IsEmpty);
        Assert.Equal(["b"], plan.After.Owners.Keys);
    }
}
