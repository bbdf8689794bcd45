using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>DNS elements renewed the way the writer renders them (<see cref="KernelState"/> plans,
/// <see cref="NftJson.Changes"/> renders), in WhaleWall's real table. On this kernel (6.18) an
/// `add element` of an element that is still there, with the same timeout and no `expires`, is
/// accepted and changes nothing: the element keeps its old expiry (checked with nft by hand too).</summary>
public sealed class DnsRenewalTests
{
    private const string Table = "whalewall";

    private static Element Host(DateTimeOffset until) => new(NftSets.OutHosts(IpFamily.V4),
    [
        Field.Address(AddressRange.Single(System.Net.IPAddress.Parse(KernelLab.ClientIp4))), Field.Address(AddressRange.Single(System.Net.IPAddress.Parse(KernelLab.ServerIp4))),
        new Field(FieldKind.Proto, 6, 6), new Field(FieldKind.Port, 0, 65535), new Field(FieldKind.Port, 80, 80),
    ], expires: until);

    private static bool Holds(KernelLab lab)
    {
        // where the kernel holds it: an exact element sits in the hash twin (NftPlacement)
        var listed = lab.Nft.Run(NftJson.ListSet(Table, Host(DateTimeOffset.UtcNow).PhysicalSet));
        Assert.True(listed.Ok, listed.Error);
        return listed.Output.Contains(KernelLab.ServerIp4, StringComparison.Ordinal);
    }

    private static KernelState Apply(KernelLab lab, KernelState state, Fragment fragment, DateTimeOffset now,
        Action<KernelState.Plan>? check = null, bool renewByAdd = false)
    {
        var plan = state.Replace([fragment], now, renewByAdd);
        check?.Invoke(plan);
        if (plan.IsEmpty) return plan.After;
        var result = lab.Nft.Run(NftJson.Changes(Table, plan.Deletes, plan.Adds, plan.ChainDeletes, plan.ChainAdds, now));
        Assert.True(result.Ok, result.Error);
        return plan.After;
    }

    /// <summary>A DNS answer renews an address whose element expires within the writer's margin
    /// (<see cref="KernelState.ExpiryMargin"/>: too close to delete safely, so it is only added
    /// again): the element must live on to its new expiry, not die at its old one.</summary>
    [Fact]
    public void A_renewal_close_to_the_old_expiry_keeps_the_element_until_its_new_expiry()
    {
        using var lab = new KernelLab();
        Assert.True(lab.Nft.Run(NftJson.FullTable(Table, [])).Ok);
        var t0 = DateTimeOffset.UtcNow;
        var state = Apply(lab, KernelState.Empty, new Fragment("c", [Host(t0.AddSeconds(3))]), t0);

        Thread.Sleep(1500);
        var t1 = DateTimeOffset.UtcNow;
        Apply(lab, state, new Fragment("c", [Host(t1.AddSeconds(3))]), t1,
            plan => Assert.True(plan.Deletes.IsEmpty && plan.Adds.Length == 1, "the renewal is an add only (within the margin)"));

        // past the old expiry (t0 + 3 s), well before the new one (t1 + 3 s)
        Thread.Sleep(t0.AddSeconds(3.8) - DateTimeOffset.UtcNow);
        Assert.True(Holds(lab), "the renewed element died at its old expiry");
    }

    /// <summary>The container let an address go at its expiry while the kernel still holds the
    /// element (the kernel's timeout is whole seconds, rounded up, and starts at the commit), and
    /// the next answer brings it back: the add must give it its new expiry.</summary>
    [Fact]
    public void An_address_learned_again_while_the_kernel_still_holds_it_gets_its_new_expiry()
    {
        using var lab = new KernelLab();
        Assert.True(lab.Nft.Run(NftJson.FullTable(Table, [])).Ok);
        var t0 = DateTimeOffset.UtcNow;
        var state = Apply(lab, KernelState.Empty, new Fragment("c", [Host(t0.AddSeconds(3))]), t0);
        state = Apply(lab, state, Fragment.Empty("c"), t0.AddSeconds(2)); // let go (left to expire: within the margin)

        Thread.Sleep(1500);
        var t1 = DateTimeOffset.UtcNow;
        Apply(lab, state, new Fragment("c", [Host(t1.AddSeconds(3))]), t1,
            plan => Assert.True(plan.Deletes.IsEmpty && plan.Adds.Length == 1, "a plain add"));

        Thread.Sleep(t0.AddSeconds(3.8) - DateTimeOffset.UtcNow);
        Assert.True(Holds(lab), "the element learned again died at its old expiry");
    }

    /// <summary>The start-up probe that decides how the writer renews (<see cref="RenewalProbe"/>),
    /// against the real kernel.</summary>
    [Fact]
    public void The_renewal_probe_answers_and_leaves_no_table_behind()
    {
        using var lab = new KernelLab();
        Assert.True(RenewalProbe.AddRenews(lab.Nft, Table), "this kernel (6.18) restarts a present element's clock on add with expires");
        var tables = lab.Nft.Run("{\"nftables\":[{\"list\":{\"tables\":{}}}]}");
        Assert.True(tables.Ok, tables.Error);
        Assert.DoesNotContain("renewprobe", tables.Output);
    }

    /// <summary>Where the probe says so, a renewal far from the old expiry is one add, and the
    /// element lives to its new expiry (not its old one).</summary>
    [Fact]
    public void An_add_only_renewal_keeps_the_element_until_its_new_expiry()
    {
        using var lab = new KernelLab();
        Assert.True(RenewalProbe.AddRenews(lab.Nft, Table));
        Assert.True(lab.Nft.Run(NftJson.FullTable(Table, [])).Ok);
        var t0 = DateTimeOffset.UtcNow;
        var state = Apply(lab, KernelState.Empty, new Fragment("c", [Host(t0.AddSeconds(3))]), t0, renewByAdd: true);

        var t1 = DateTimeOffset.UtcNow;
        Apply(lab, state, new Fragment("c", [Host(t1.AddSeconds(8))]), t1, renewByAdd: true,
            check: plan => Assert.True(plan.Deletes.IsEmpty && plan.Adds.Length == 1, "the renewal is an add alone"));

        Thread.Sleep(t0.AddSeconds(4) - DateTimeOffset.UtcNow);
        Assert.True(Holds(lab), "the renewed element died at its old expiry");
    }
}
