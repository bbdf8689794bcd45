using System.Collections.Immutable;
using System.Text.Json;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Nft;

/// <summary>The element part of a transaction, written straight to UTF-8: addresses spelled as
/// <see cref="Addresses.Format"/> spells them, one command per set, and the same text whatever
/// order the elements come in.</summary>
public sealed class NftJsonRenderTests
{
    private static readonly Field Tcp = new(FieldKind.Proto, 6, 6);
    private static readonly Field AnyPort = new(FieldKind.Port, 0, 65535);

    /// <summary>Every address field of every element command, in order.</summary>
    private static List<string> RenderedAddresses(string json)
    {
        var found = new List<string>();
        void Walk(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.String: found.Add(e.GetString()!); break;
                case JsonValueKind.Array: foreach (var x in e.EnumerateArray()) Walk(x); break;
                case JsonValueKind.Object:
                    foreach (var p in e.EnumerateObject())
                        if (p.Name == "addr" || p.Name == "elem" || p.Name == "range" || p.Name == "prefix" || p.Name == "concat" || p.Name == "val")
                            Walk(p.Value);
                    break;
            }
        }
        using var doc = JsonDocument.Parse(json);
        foreach (var command in doc.RootElement.GetProperty("nftables").EnumerateArray())
            Walk(command.GetProperty("add").GetProperty("element").GetProperty("elem"));
        return found;
    }

    [Fact]
    public void Addresses_are_written_as_Addresses_Format_spells_them_both_families_and_at_the_edges()
    {
        var random = new Random(14);
        var values = new List<(IpFamily Family, UInt128 Value)>
        {
            (IpFamily.V4, 0), (IpFamily.V4, uint.MaxValue), (IpFamily.V4, 0x0A000001), (IpFamily.V4, 0xC6120001), (IpFamily.V4, 0x01000000),
            (IpFamily.V6, 0), (IpFamily.V6, 1), (IpFamily.V6, UInt128.MaxValue),
            (IpFamily.V6, (UInt128)0xFFFF_0102_0304), // ::ffff:1.2.3.4
            (IpFamily.V6, ((UInt128)0x2001_0db8_0000_0000UL << 64) | 0x0000_0000_0000_0001UL),
            (IpFamily.V6, ((UInt128)0x2001_0db8_0000_0001UL << 64) | 0x0000_0000_0000_0000UL),
        };
        for (var i = 0; i < 2000; i++)
        {
            values.Add((IpFamily.V4, (uint)random.NextInt64(0, 1L << 32)));
            // zero runs in various places, as real addresses have
            var hi = (ulong)random.NextInt64() & (random.Next(2) == 0 ? 0xFFFF_0000_FFFF_0000UL : ulong.MaxValue);
            var lo = (ulong)random.NextInt64() & (random.Next(2) == 0 ? 0x0000_0000_0000_FFFFUL : ulong.MaxValue);
            values.Add((IpFamily.V6, ((UInt128)hi << 64) | lo));
        }
        foreach (var family in new[] { IpFamily.V4, IpFamily.V6 })
        {
            var kind = family == IpFamily.V4 ? FieldKind.Ipv4 : FieldKind.Ipv6;
            var mine = values.Where(v => v.Family == family).Select(v => v.Value).Distinct().ToList();
            var elements = mine.Select(v => new Element(NftSets.Managed(family), [new Field(kind, v, v)])).ToList();
            var rendered = RenderedAddresses(NftJson.Changes("t", [], elements));
            var expected = mine.Order().Select(v => Addresses.Format(family, v)).ToList();
            Assert.Equal(expected, rendered);
        }
    }

    [Fact]
    public void Ranges_and_prefixes_spell_both_ends_like_Addresses_Format()
    {
        var lo = 0xC6130005u; // 198.19.0.5
        var element = new Element("gw4", [new Field(FieldKind.Ipv4, lo, lo + 10)]);
        var prefix = new Element("gw4", [new Field(FieldKind.Ipv4, 0xC6140000u, 0xC61400FFu)]);
        var json = NftJson.Changes("t", [], [element, prefix]);
        Assert.Contains("""{"range":["198.19.0.5","198.19.0.15"]}""", json);
        Assert.Contains("""{"prefix":{"addr":"198.20.0.0","len":24}}""", json);
    }

    [Fact]
    public void A_table_renders_the_same_text_whatever_order_its_elements_come_in_with_one_command_per_set()
    {
        var elements = new List<Element>();
        for (uint i = 0; i < 300; i++)
        {
            var owner = new Field(FieldKind.Ipv4, 0xC6120000u + i, 0xC6120000u + i);
            elements.Add(new Element("managed4", [owner]));
            elements.Add(new Element("out4", [owner, new Field(FieldKind.Ipv4, 0xC6130000u + i % 7, 0xC6130000u + i % 7), Tcp, AnyPort, new Field(FieldKind.Port, 443, 443)]));
            elements.Add(new Element("out4", [owner, new Field(FieldKind.Ipv4, 0xC6140000u, 0xC61400FFu), Tcp, AnyPort, new Field(FieldKind.Port, 80, 80)]));
        }
        var sorted = NftJson.FullTable("t", elements);
        var shuffled = elements.ToArray();
        new Random(7).Shuffle(shuffled);
        Assert.Equal(sorted, NftJson.FullTable("t", shuffled));
        Assert.Equal(sorted, NftJson.FullTable("t", elements.Concat(elements))); // repeats are one element

        using var doc = JsonDocument.Parse(sorted);
        var sets = doc.RootElement.GetProperty("nftables").EnumerateArray()
            .Where(c => c.TryGetProperty("add", out var add) && add.TryGetProperty("element", out _))
            .Select(c => c.GetProperty("add").GetProperty("element").GetProperty("name").GetString()!)
            .ToList();
        Assert.Equal(sets.Distinct().Count(), sets.Count);
        Assert.Equal(sets.Order(StringComparer.Ordinal), sets);
        var physical = elements.Select(e => e.PhysicalSet).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.Equal(physical, sets);
    }

    private static Element Learned(uint destination, DateTimeOffset expires) => new("outh4",
        [new Field(FieldKind.Ipv4, 0xC6128002u, 0xC6128002u), new Field(FieldKind.Ipv4, destination, destination), Tcp, AnyPort,
            new Field(FieldKind.Port, 443, 443)], expires: expires);

    /// <summary>An element's kernel timeout is the seconds it has left, rounded up and at least
    /// one (a timeout of 0 means "no timeout" to nftables): the kernel never lets it go before the
    /// writer stops counting on it (a delete of an element the kernel already dropped fails the
    /// batch), and holds it at most a second longer, which the writer's expiry sweep waits for
    /// (NftWriterExpirySpecs).</summary>
    [Theory]
    [InlineData(27.2, 28)]
    [InlineData(27.0, 27)]
    [InlineData(1.5, 2)]
    [InlineData(0.6, 1)]
    [InlineData(0.0, 1)]
    [InlineData(-300.0, 1)]
    public void A_dns_elements_kernel_timeout_covers_its_expiry_by_less_than_a_second(double secondsLeft, int timeout)
    {
        var now = new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
        var json = NftJson.Changes("t", [], [Learned(0xC613000Au, now.AddSeconds(secondsLeft)), Learned(0xC613000Bu, now.AddSeconds(60))], now: now);
        Assert.Contains("\"timeout\":60,\"expires\":60", json);
        Assert.DoesNotContain("\"timeout\":0", json);
        Assert.Contains("198.19.0.10", json);
        Assert.Contains($"\"timeout\":{timeout},\"expires\":{timeout}", json);
    }
}
