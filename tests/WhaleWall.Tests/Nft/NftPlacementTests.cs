using System.Collections.Immutable;
using WhaleWall.Firewall.Nft;
using Xunit;

namespace WhaleWall.Tests.Nft;

/// <summary>Where an element lives (docs/nftables.md, "Exact twins" and "Shards").</summary>
public sealed class NftPlacementTests
{
    private static Field V4(uint lo, uint hi) => new(FieldKind.Ipv4, lo, hi);
    private static Field V4(uint a) => V4(a, a);
    private static readonly Field Tcp = new(FieldKind.Proto, 6, 6);
    private static readonly Field AnyPort = new(FieldKind.Port, 0, 65535);
    private static readonly Field Https = new(FieldKind.Port, 443, 443);

    [Fact]
    public void An_interval_element_of_out_goes_to_the_shard_of_its_owner_address_and_reads_back_as_out()
    {
        for (uint last = 0; last < 64; last++)
        {
            var owner = 0xC6128000u + last; // 198.18.128.x
            var element = new Element("out4", [V4(owner), V4(0xC6130000u, 0xC61300FFu), Tcp, AnyPort, Https]);
            Assert.Equal($"out4_{last % 16}", element.PhysicalSet);
            Assert.Equal("out4", NftPlacement.Unsharded(element.PhysicalSet));
            var (logical, fields) = NftPlacement.Logical(element.PhysicalSet, element.PhysicalFields);
            Assert.Equal("out4", logical);
            Assert.Equal(element.Fields, fields);
        }
    }

    [Fact]
    public void Exact_elements_stay_in_the_twin_and_other_sets_are_not_sharded()
    {
        Assert.Equal("outx4", new Element("out4", [V4(0xC6128002u), V4(0xC6130001u), Tcp, AnyPort, Https]).PhysicalSet);
        Assert.Equal("pub4", new Element("pub4", [V4(0, uint.MaxValue), V4(0xC6128002u), Tcp, Https]).PhysicalSet);
        Assert.Equal("outh4", new Element("outh4", [V4(0xC6128002u), V4(0xC6130001u), Tcp, AnyPort, new Field(FieldKind.Port, 1, 1023)]).PhysicalSet);
    }

    [Fact]
    public void Only_names_of_real_shards_read_back_as_their_set()
    {
        Assert.Equal("out6", NftPlacement.Unsharded("out6_15"));
        foreach (var name in new[] { "out4_16", "out4_", "out4_01", "out4_-1", "pub4_3", "out4", "outx4" })
            Assert.Equal(name, NftPlacement.Unsharded(name));
    }

    [Fact]
    public void An_out_element_whose_owner_is_not_one_address_is_refused_rather_than_put_where_the_dispatch_cannot_find_it() =>
        Assert.Throws<ArgumentException>(() => new Element("out4", [V4(0xC6128000u, 0xC61280FFu), V4(0xC6130001u), Tcp, AnyPort, Https]));

    [Fact]
    public void The_kernel_declares_the_shards_instead_of_the_sharded_set_and_the_start_up_retires_the_old_one()
    {
        var declared = NftSets.Declared.Select(s => s.Name).ToImmutableHashSet();
        Assert.DoesNotContain("out4", declared);
        Assert.All(Enumerable.Range(0, NftPlacement.Shards), k => Assert.Contains($"out6_{k}", declared));
        Assert.Equal(["out4", "out6"], NftSets.Retired.Select(s => s.Name).Order());
        Assert.Equal(NftPlacement.PhysicalSets("out4").Order(), declared.Where(n => n.StartsWith("out4_", StringComparison.Ordinal) || n == "outx4").Order());
    }
}
