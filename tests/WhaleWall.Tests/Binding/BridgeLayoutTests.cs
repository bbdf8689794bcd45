using System.Net;
using System.Net.NetworkInformation;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Binding;
using Xunit;

namespace WhaleWall.Tests.Binding;

/// <summary>The bridge table's rendering (docs/binding.md), as data; the kernel tests load it
/// and send real frames through it.</summary>
public sealed class BridgeLayoutTests
{
    private static readonly PhysicalAddress Mac = PhysicalAddress.Parse("02-42-C6-12-1E-02");
    private static readonly PortBinding Dual = PortBinding.Of(7, Mac, IPAddress.Parse("198.18.30.2"), IPAddress.Parse("2001:db8:30::2"));

    [Theory]
    [InlineData("02-42-C6-12-1E-02", "fe80::42:c6ff:fe12:1e02")]
    [InlineData("00-00-00-00-00-00", "fe80::200:ff:fe00:0")]
    [InlineData("FE-FF-FF-FF-FF-FF", "fe80::fcff:ffff:feff:ffff")]
    [InlineData("02-00-5E-10-00-01", "fe80::5eff:fe10:1")]
    public void Link_local_address_is_the_modified_eui64_of_the_mac(string mac, string expected) =>
        Assert.Equal(IPAddress.Parse(expected), LinkLocalAddress.Eui64(PhysicalAddress.Parse(mac)));

    [Fact]
    public void A_bound_dual_stack_container_is_eight_elements_keyed_by_port_mac_and_address()
    {
        var keys = BridgeLayout.Elements(Dual).Select(e => e.Key).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(
        [
            "owned4 198.18.30.2",
            "owned6 2001:db8:30::2",
            "owned6 fe80::42:c6ff:fe12:1e02",
            "owned_mac 02:42:c6:12:1e:02",
            "port4 7 . 02:42:c6:12:1e:02 . 198.18.30.2",
            "port6 7 . 02:42:c6:12:1e:02 . 2001:db8:30::2",
            "port6 7 . 02:42:c6:12:1e:02 . fe80::42:c6ff:fe12:1e02",
            "ports 7",
        ], keys);
    }

    [Fact]
    public void Before_its_port_is_known_a_binding_only_owns_its_mac_and_addresses()
    {
        var unbound = Dual with { Port = null };
        Assert.All(BridgeLayout.Elements(unbound), e => Assert.StartsWith("owned", e.Set));
        Assert.Equal(4, BridgeLayout.Elements(unbound).Count());
        // binding it later only adds: the owned elements are the same ones
        Assert.Subset(BridgeLayout.Elements(unbound.On(7)).ToHashSet(), BridgeLayout.Elements(unbound).ToHashSet());
        Assert.Equal(BridgeLayout.Elements(Dual).ToHashSet(), BridgeLayout.Elements(unbound.On(7)).ToHashSet());
    }

    [Fact]
    public void The_same_address_on_another_port_is_another_element()
    {
        // a reused address: the new owner never matches the old owner's port elements
        var old = BridgeLayout.Elements(Dual).Where(e => e.Set.StartsWith("port")).ToHashSet();
        var reused = BridgeLayout.Elements(Dual with { Port = 8 }).Where(e => e.Set.StartsWith("port")).ToHashSet();
        Assert.Empty(old.Intersect(reused));
    }

    [Fact]
    public void Raw_ipv6_elements_are_128_bit_numbers_and_ports_are_numbers()
    {
        var json = JsonNode.Parse(BridgeLayout.Changes("t", [], BridgeLayout.Elements(Dual)))!;
        var adds = json["nftables"]!.AsArray().Select(c => c!["add"]!["element"]!).ToDictionary(e => (string)e["name"]!, e => e["elem"]!.ToJsonString());
        Assert.Equal("""["0x20010db8003000000000000000000002","0xfe800000000000000042c6fffe121e02"]""", adds["owned6"]);
        Assert.Contains("""{"concat":[7,"02:42:c6:12:1e:02","0x20010db8003000000000000000000002"]}""", adds["port6"]);
        Assert.Equal("""[7]""", adds["ports"]);
        Assert.Equal("""[{"concat":[7,"02:42:c6:12:1e:02","198.18.30.2"]}]""", adds["port4"]);
        Assert.All(json["nftables"]!.AsArray(), c => Assert.Equal("bridge", (string?)c!["add"]!["element"]!["family"]));
    }

    [Fact]
    public void A_lenient_guard_carries_its_lease_and_is_deleted_without_it()
    {
        var guard = BridgeLayout.Element(new GuardedSubnet(IPNetwork.Parse("198.18.30.0/24"), TimeSpan.FromSeconds(2.5)));
        Assert.Equal(3, guard.TimeoutSeconds);
        Assert.Equal("""{"elem":{"val":{"prefix":{"addr":"198.18.30.0","len":24}},"timeout":3}}""", guard.Json().ToJsonString());
        var renewal = JsonNode.Parse(BridgeLayout.Changes("t", [guard], [guard]))!["nftables"]!.AsArray();
        Assert.Equal("""[{"prefix":{"addr":"198.18.30.0","len":24}}]""", renewal[0]!["delete"]!["element"]!["elem"]!.ToJsonString());
        Assert.Contains("\"timeout\":3", renewal[1]!["add"]!["element"]!["elem"]!.ToJsonString());
        Assert.Null(BridgeLayout.Element(new GuardedSubnet(IPNetwork.Parse("2001:db8:30::/64"))).TimeoutSeconds);
    }

    [Fact]
    public void The_rules_do_not_depend_on_the_containers_and_only_name_its_own_table()
    {
        var few = JsonNode.Parse(BridgeLayout.FullTable("mine", BridgeLayout.Elements(Dual)))!["nftables"]!.AsArray();
        var many = JsonNode.Parse(BridgeLayout.FullTable("mine", Enumerable.Range(0, 500)
            .SelectMany(i => BridgeLayout.Elements(PortBinding.Of(100 + i, Mac, IPAddress.Parse($"198.18.31.{i % 250}"), null)))))!["nftables"]!.AsArray();
        int Rules(JsonArray commands) => commands.Count(c => c!["add"]?["rule"] is not null);
        Assert.Equal(Rules(few), Rules(many));
        Assert.InRange(Rules(few), 20, 40);
        Assert.All(few.Concat(many), c =>
        {
            var body = ((JsonObject)c!).First().Value!.AsObject().First().Value!.AsObject();
            Assert.Equal("bridge", (string?)body["family"]);
            Assert.Equal("mine", (string?)(body["table"] ?? body["name"]));
        });
    }

    [Fact]
    public void A_known_port_classifies_its_addresses_with_its_mac_on_its_port_only()
    {
        var known = new KnownPort(9, Mac, IPAddress.Parse("198.18.30.9"), IPAddress.Parse("2001:db8:30::9"));
        Assert.Equal(["port4 9 . 02:42:c6:12:1e:02 . 198.18.30.9", "port6 9 . 02:42:c6:12:1e:02 . 2001:db8:30::9"],
            BridgeLayout.Elements(known).Select(e => e.Key).Order(StringComparer.Ordinal));
    }
}
