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

    [Theory]
    [InlineData(3)]
    [InlineData(40)] // more than a look back covers: a set
    public void An_owner_that_lists_an_element_twice_holds_it_once(int count)
    {
        var twice = Enumerable.Range(0, count).Select(n => E("managed4", n)).Append(E("managed4", 1)).ToArray();
        var plan = KernelState.Empty.Replace([new Fragment("a", [.. twice])]);
        Assert.Equal(count, plan.Adds.Length);
        // one reference, so one removal takes it out
        Assert.Equal(count, plan.After.Replace([Fragment.Empty("a")]).Deletes.Length);
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

    // --- what a container that goes leaves in interval sets waits for collection ---

    private static Field Ip(int n) => new(FieldKind.Ipv4, 0xC6120000u + (uint)n, 0xC6120000u + (uint)n);
    private static readonly Field Subnet = new(FieldKind.Ipv4, 0xC6130000u, 0xC61300FFu); // 198.19.0.0/24
    private static readonly Field Tcp = new(FieldKind.Proto, 6, 6);
    private static readonly Field AnyPort = new(FieldKind.Port, 0, 65535);
    private static Field Port(int p) => new(FieldKind.Port, (UInt128)p, (UInt128)p);

    private static Element Managed(int n) => new("managed4", [Ip(n)]);
    /// <summary>To a CIDR: an interval element (out4 itself).</summary>
    private static Element ToSubnet(int n) => new("out4", [Ip(n), Subnet, Tcp, AnyPort, Port(443)]);
    /// <summary>To one address and port: exact, in the hash twin outx4.</summary>
    private static Element ToOne(int n) => new("out4", [Ip(n), Ip(200), Tcp, AnyPort, Port(443)]);
    /// <summary>A peer rule with a port range: interval, and it opens the destination.</summary>
    private static Element PeerRange(int n) => new("peer4", [Ip(n), Ip(201), Tcp, AnyPort, new Field(FieldKind.Port, 8000, 8100)]);
    /// <summary>Published to any client: interval, owned through its destination field.</summary>
    private static Element Published(int n) => new("pub4", [new Field(FieldKind.Ipv4, 0, uint.MaxValue), Ip(n), Tcp, Port(80)]);

    private static Fragment Container(string id, int n, params Element[] more) => new(id, [Managed(n), .. more]);

    [Fact]
    public void A_container_that_goes_leaves_its_interval_elements_for_collection_and_deletes_the_rest_at_once()
    {
        Assert.Equal("outx4", ToOne(1).PhysicalSet);
        Assert.Equal("out4_" + (ToSubnet(1).Fields[0].Lo & 15), ToSubnet(1).PhysicalSet); // its owner's shard
        var state = KernelState.Empty.Replace([Container("a", 1, ToSubnet(1), ToOne(1), PeerRange(1), Published(1))]).After;
        var removal = state.Replace([Fragment.Empty("a")]);
        Assert.Equal(new[] { Managed(1), ToOne(1), PeerRange(1) }.Order(), removal.Deletes.Order());
        Assert.Equal(new[] { ToSubnet(1), Published(1) }.Order(), removal.After.Garbage.Order());
        Assert.Equal(0, removal.After.ElementCount);
    }

    [Fact]
    public void A_container_that_stays_under_policy_loses_what_its_new_policy_drops_at_once()
    {
        var state = KernelState.Empty.Replace([Container("a", 1, ToSubnet(1))]).After;
        var narrowed = state.Replace([Container("a", 1)]);
        Assert.Equal([ToSubnet(1)], narrowed.Deletes.ToArray());
        Assert.Empty(narrowed.After.Garbage);
    }

    [Fact]
    public void An_address_under_policy_again_gets_what_its_old_owner_left_deleted_in_the_same_transaction()
    {
        var state = KernelState.Empty.Replace([Container("old", 1, ToSubnet(1), Published(1))]).After
            .Replace([Fragment.Empty("old")]).After;
        Assert.Equal(2, state.Garbage.Count);
        // a new container on the same address with a policy that has neither
        var next = state.Replace([Container("new", 1, ToOne(1))]);
        Assert.Equal(new[] { ToSubnet(1), Published(1) }.Order(), next.Deletes.Order());
        Assert.Equal(new[] { Managed(1), ToOne(1) }.Order(), next.Adds.Order());
        Assert.Empty(next.After.Garbage);
    }

    [Fact]
    public void An_element_wanted_again_while_it_waits_for_collection_is_kept_not_added_twice()
    {
        var state = KernelState.Empty.Replace([Container("a", 1, ToSubnet(1), Published(1))]).After
            .Replace([Fragment.Empty("a")]).After;
        // the same container back (a restart): its /24 element is still in the kernel
        var back = state.Replace([Container("a2", 1, ToSubnet(1))]);
        Assert.Equal([Published(1)], back.Deletes.ToArray());
        Assert.Equal([Managed(1)], back.Adds.ToArray());
        Assert.Equal(1, back.After.References[ToSubnet(1)]);
        Assert.Empty(back.After.Garbage);
    }

    [Fact]
    public void Another_address_does_not_touch_what_waits_for_collection()
    {
        var state = KernelState.Empty.Replace([Container("a", 1, ToSubnet(1))]).After.Replace([Fragment.Empty("a")]).After;
        var other = state.Replace([Container("b", 2, ToSubnet(2))]);
        Assert.Empty(other.Deletes);
        Assert.Equal([ToSubnet(1)], other.After.Garbage.ToArray());
    }

    [Fact]
    public void Collection_deletes_bounded_batches_until_nothing_is_left()
    {
        var state = KernelState.Empty
            .Replace(Enumerable.Range(1, 5).Select(n => Container("c" + n, n, ToSubnet(n))).ToList()).After
            .Replace(Enumerable.Range(1, 5).Select(n => Fragment.Empty("c" + n)).ToList()).After;
        Assert.Equal(5, state.Garbage.Count);
        var first = state.Collect(2);
        Assert.Equal(2, first.Deletes.Length);
        Assert.Empty(first.Adds);
        Assert.Equal(3, first.After.Garbage.Count);
        var rest = first.After.Collect(10);
        Assert.Equal(3, rest.Deletes.Length);
        Assert.Empty(rest.After.Garbage);
        Assert.Empty(first.Deletes.Intersect(rest.Deletes));
    }
}
