using System.Net;
using WhaleWall.Firewall.Nft;
using Xunit;

namespace WhaleWall.Tests.Nft;

/// <summary>Reading per-element counters from libnftables' JSON listing (format of 1.0.6).</summary>
public sealed class NftCountersTests
{
    private const string Listing = """
        {"nftables": [{"metainfo": {"version": "1.0.6"}},
          {"set": {"family": "inet", "name": "out4_2", "table": "whalewall", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service", "inet_service"], "flags": ["interval"],
            "elem": [{"elem": {"val": {"concat": ["198.18.128.2", {"prefix": {"addr": "198.19.0.0", "len": 24}}, "tcp", {"range": [0, 65535]}, 80]}, "counter": {"packets": 3, "bytes": 180}}}]}},
          {"set": {"family": "inet", "name": "peer6", "table": "whalewall", "type": ["ipv6_addr", "ipv6_addr", "inet_proto", "inet_service", "inet_service"], "flags": ["interval"],
            "elem": [{"elem": {"val": {"concat": ["2001:db8::2", {"range": ["2001:db8::3", "2001:db8::3"]}, "tcp", {"range": [0, 65535]}, 5432]}, "counter": {"packets": 1, "bytes": 80}}}]}},
          {"set": {"family": "inet", "name": "pub4", "table": "whalewall", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"], "flags": ["interval"],
            "elem": [{"elem": {"val": {"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, {"prefix": {"addr": "198.18.128.5", "len": 32}}, "tcp", 8080]}, "counter": {"packets": 4, "bytes": 240}}}]}},
          {"set": {"family": "inet", "name": "dropout4", "table": "whalewall", "type": "ipv4_addr",
            "elem": [{"elem": {"val": "198.18.128.2", "counter": {"packets": 7, "bytes": 420}}}]}},
          {"set": {"family": "inet", "name": "dropin4", "table": "whalewall", "type": "ipv4_addr",
            "elem": [{"elem": {"val": "198.18.128.2", "counter": {"packets": 0, "bytes": 0}}}]}},
          {"set": {"family": "inet", "name": "managed4", "table": "whalewall", "type": "ipv4_addr", "elem": ["198.18.128.2"]}},
          {"set": {"family": "inet", "name": "gw4", "table": "whalewall", "type": "ipv4_addr", "flags": ["interval"],
            "elem": [{"elem": {"val": {"prefix": {"addr": "198.18.128.0", "len": 24}}, "counter": {"packets": 9, "bytes": 9}}}]}},
          {"chain": {"family": "inet", "table": "whalewall", "name": "egress"}}]}
        """;

    [Fact]
    public void Each_counted_element_belongs_to_the_container_address_in_it_with_its_direction_and_verdict()
    {
        var counters = NftCounters.Read(Listing);
        Assert.Equal(5, counters.Count);
        var byset = counters.ToDictionary(c => c.Element.Split(' ')[0]);
        Assert.Equal((IPAddress.Parse("198.18.128.2"), true, true, 3UL, 180UL), Tuple(byset["out4_2"]));
        Assert.Equal((IPAddress.Parse("2001:db8::3"), false, true, 1UL, 80UL), Tuple(byset["peer6"]));    // the destination's ingress
        Assert.Equal((IPAddress.Parse("198.18.128.5"), false, true, 4UL, 240UL), Tuple(byset["pub4"]));   // the published container
        Assert.Equal((IPAddress.Parse("198.18.128.2"), true, false, 7UL, 420UL), Tuple(byset["dropout4"]));
        Assert.Equal((IPAddress.Parse("198.18.128.2"), false, false, 0UL, 0UL), Tuple(byset["dropin4"]));
    }

    [Fact]
    public void Elements_are_identified_by_set_and_value()
    {
        var counters = NftCounters.Read(Listing);
        Assert.Equal(counters.Count, counters.Select(c => c.Element).Distinct().Count());
        Assert.StartsWith("dropout4 \"198.18.128.2\"", counters.Single(c => c.Element.StartsWith("dropout4")).Element);
    }

    [Fact]
    public void A_listing_without_the_table_reads_as_nothing() =>
        Assert.Empty(NftCounters.Read("""{"nftables": [{"metainfo": {"version": "1.0.6"}}]}"""));

    private static (IPAddress, bool, bool, ulong, ulong) Tuple(ElementCounter c) => (c.Container, c.Egress, c.Accepted, c.Packets, c.Bytes);
}
