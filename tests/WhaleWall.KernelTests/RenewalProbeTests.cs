using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>The start-up probe that decides how DNS elements are renewed, against the real
/// kernel, and the add-only renewal it chooses, in WhaleWall's real table.</summary>
public sealed class RenewalProbeTests
{
    private const string Table = "whalewall";

    private static Element Host(DateTimeOffset until) => new(NftSets.OutHosts(IpFamily.V4),
    [
        Field.Address(AddressRange.Single(System.Net.IPAddress.Parse(KernelLab.ClientIp4))), Field.Address(AddressRange.Single(System.Net.IPAddress.Parse(KernelLab.ServerIp4))),
        new Field(FieldKind.Proto, 6, 6), new Field(FieldKind.Port, 0, 65535), new Field(FieldKind.Port, 80, 80),
    ], expires: until);

    [Fact]
    public void The_probe_answers_and_leaves_no_table_behind()
    {
        using var lab = new KernelLab();
        var renews = RenewalProbe.AddRenews(lab.Nft, Table);
        Assert.True(renews, "this kernel (6.18) restarts a present element's clock on add with expires");
        var tables = lab.Nft.Run("{\"nftables\":[{\"list\":{\"tables\":{}}}]}");
        Assert.True(tables.Ok, tables.Error);
        Assert.DoesNotContain("renewprobe", tables.Output);
    }

    /// <summary>Where the probe says so, a renewal is one add, and the element lives to its new
    /// expiry (not its old one).</summary>
    [Fact]
    public void An_add_only_renewal_keeps_the_element_until_its_new_expiry()
    {
        using var lab = new KernelLab();
        Assert.True(RenewalProbe.AddRenews(lab.Nft, Table));
        Assert.True(lab.Nft.Run(NftJson.FullTable(Table, [])).Ok);
        var t0 = DateTimeOffset.UtcNow;
        var first = KernelState.Empty.Replace([new Fragment("c", [Host(t0.AddSeconds(3))])], t0, renewByAdd: true);
        Assert.True(lab.Nft.Run(NftJson.Changes(Table, first.Deletes, first.Adds, now: t0)).Ok);

        var t1 = DateTimeOffset.UtcNow;
        var renewal = first.After.Replace([new Fragment("c", [Host(t1.AddSeconds(8))])], t1, renewByAdd: true);
        Assert.True(renewal.Deletes.IsEmpty && renewal.Adds.Length == 1, "the renewal is an add alone");
        var r = lab.Nft.Run(NftJson.Changes(Table, renewal.Deletes, renewal.Adds, now: t1));
        Assert.True(r.Ok, r.Error);

        Thread.Sleep(t0.AddSeconds(4) - DateTimeOffset.UtcNow);
        var listed = lab.Nft.Run(NftJson.ListSet(Table, NftSets.OutHosts(IpFamily.V4)));
        Assert.True(listed.Ok, listed.Error);
        Assert.Contains(KernelLab.ServerIp4, listed.Output);
    }
}
