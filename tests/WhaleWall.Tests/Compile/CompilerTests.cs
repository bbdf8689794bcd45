using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Compile;

public class CompilerTests
{
    private static IReadOnlyList<string> Compile(ContainerFacts self, params ContainerFacts[] peers) =>
        Compiler.Compile(self, LabelParser.Decide(self.Labels), peers).Fragment.Elements.Where(e => !Facts.IsDropCounter(e)).Select(e => e.Key).ToList();

    [Fact]
    public void Unlabeled_container_owns_nothing() =>
        Assert.Empty(Compile(Facts.Container("a", "198.18.128.2", enabled: false)));

    [Fact]
    public void Every_managed_address_has_an_egress_and_an_ingress_drop_counter() =>
        Assert.Equal(["dropin4 198.18.128.2", "dropin6 2001:db8:1::2", "dropout4 198.18.128.2", "dropout6 2001:db8:1::2",
                "managed4 198.18.128.2", "managed6 2001:db8:1::2"],
            Compiler.Compile(Facts.Container("a", "198.18.128.2", ipv6: "2001:db8:1::2"), LabelParser.Decide(Facts.Container("a", "198.18.128.2").Labels), [])
                .Fragment.Elements.Select(e => e.Key));

    [Fact]
    public void Unmanaged_container_has_no_drop_counters() =>
        Assert.Empty(Compiler.Compile(Facts.Container("a", "198.18.128.2", enabled: false), LabelParser.Decide(Facts.Container("a", "198.18.128.2", enabled: false).Labels), []).Fragment.Elements);

    [Fact]
    public void Opted_in_container_without_rules_is_only_managed() =>
        Assert.Equal(["managed4 198.18.128.2"], Compile(Facts.Container("a", "198.18.128.2")));

    [Fact]
    public void Stopped_container_owns_nothing()
    {
        var a = Facts.Container("a", "198.18.128.2") with { Running = false };
        Assert.Empty(Compile(a));
    }

    [Fact]
    public void Several_ips_in_one_rule_become_one_element_each()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10, 198.19.0.12, 198.19.0.14]\n    proto: tcp\n    dst_ports: [80]\n");
        Assert.Equal([
            "managed4 198.18.128.2",
            "out4 198.18.128.2 . 198.19.0.10 . 6 . 0-65535 . 80",
            "out4 198.18.128.2 . 198.19.0.12 . 6 . 0-65535 . 80",
            "out4 198.18.128.2 . 198.19.0.14 . 6 . 0-65535 . 80",
        ], Compile(a));
    }

    /// <summary>A container on two networks whose addresses touch (a pinned address at the end of
    /// one subnet, the next one's first): merging the disjoint pieces must not join them into one
    /// element with a range of owners, which no out* shard could hold (the compile threw).</summary>
    [Fact]
    public void Adjacent_own_addresses_on_two_networks_stay_one_owner_per_element()
    {
        var one = Facts.Container("a", "198.18.128.127", "output:\n  - ips: [198.19.0.0/24]\n    proto: tcp\n    dst_ports: [443]\n");
        var a = one with { Networks = one.Networks.Add(new NetworkAttachment("other", "other-id", IPAddress.Parse("198.18.128.128"), null)) };
        var elements = Compiler.Compile(a, LabelParser.Decide(a.Labels), []).Fragment.Elements.Where(e => e.Set == "out4").ToList();
        Assert.Equal([
            "out4 198.18.128.127 . 198.19.0.0-198.19.0.255 . 6 . 0-65535 . 443",
            "out4 198.18.128.128 . 198.19.0.0-198.19.0.255 . 6 . 0-65535 . 443",
        ], elements.Select(e => e.Key).Order());
        Assert.Equal(["out4_15", "out4_0"], elements.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => e.PhysicalSet));
    }

    [Fact]
    public void Single_ports_and_ranges_mix_and_range_ends_are_inclusive()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n    proto: udp\n    dst_ports: [53, 1000-1002, 2000]\n");
        var elements = Compiler.Compile(a, LabelParser.Decide(a.Labels), []).Fragment.Elements.Where(e => e.Set == "out4").ToList();
        bool Allowed(int port) => elements.Any(e => e.Fields[4].Lo <= (UInt128)port && (UInt128)port <= e.Fields[4].Hi);
        Assert.True(Allowed(53) && Allowed(1000) && Allowed(1001) && Allowed(1002) && Allowed(2000));
        Assert.False(Allowed(52) || Allowed(54) || Allowed(999) || Allowed(1003) || Allowed(1999) || Allowed(2001));
    }

    [Fact]
    public void Overlapping_rules_compile_to_disjoint_elements()
    {
        var a = Facts.Container("a", "198.18.128.2", """
            output:
              - ips: [198.19.0.0/24]
                proto: tcp
              - ips: [198.19.0.10]
                proto: tcp
                dst_ports: [80]
            """);
        Assert.Equal(["managed4 198.18.128.2", "out4 198.18.128.2 . 198.19.0.0-198.19.0.255 . 6 . 0-65535 . 0-65535"], Compile(a));
    }

    [Fact]
    public void Rule_without_destination_allows_any_address_of_both_families()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - proto: udp\n    dst_ports: [53]\n", ipv6: "2001:db8:1::2");
        Assert.Contains("out4 198.18.128.2 . 0.0.0.0-255.255.255.255 . 17 . 0-65535 . 53", Compile(a));
        Assert.Contains("out6 2001:db8:1::2 . ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff . 17 . 0-65535 . 53", Compile(a));
    }

    [Fact]
    public void Ipv4_rules_do_not_leak_into_ipv6_and_back()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10, 2001:db8::10]\n", ipv6: "2001:db8:1::2");
        Assert.Equal([
            "managed4 198.18.128.2",
            "managed6 2001:db8:1::2",
            "out4 198.18.128.2 . 198.19.0.10 . 0-255 . 0-65535 . 0-65535",
            "out6 2001:db8:1::2 . 2001:db8::10 . 0-255 . 0-65535 . 0-65535",
        ], Compile(a));
    }

    [Fact]
    public void Container_reference_opens_egress_and_peer_ingress()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - container: b\n    proto: tcp\n    dst_ports: [756]\n");
        var b = Facts.Container("b", "198.18.128.3", enabled: false);
        Assert.Equal([
            "managed4 198.18.128.2",
            "out4 198.18.128.2 . 198.18.128.3 . 6 . 0-65535 . 756",
            "peer4 198.18.128.2 . 198.18.128.3 . 6 . 0-65535 . 756",
        ], Compile(a, b));
    }

    [Fact]
    public void Container_reference_matches_compose_service_of_the_same_project_only()
    {
        var a = Facts.Container("p-a-1", "198.18.128.2", "output:\n  - container: db\n    proto: tcp\n    dst_ports: [5432]\n",
            labels: new Dictionary<string, string> { [ContainerFacts.ComposeProjectLabel] = "p", [ContainerFacts.ComposeServiceLabel] = "a" });
        var db = Facts.Container("p-db-1", "198.18.128.3", enabled: false,
            labels: new Dictionary<string, string> { [ContainerFacts.ComposeProjectLabel] = "p", [ContainerFacts.ComposeServiceLabel] = "db" });
        var otherDb = Facts.Container("q-db-1", "198.18.128.4", enabled: false,
            labels: new Dictionary<string, string> { [ContainerFacts.ComposeProjectLabel] = "q", [ContainerFacts.ComposeServiceLabel] = "db" });
        var elements = Compile(a, db, otherDb);
        Assert.Contains("out4 198.18.128.2 . 198.18.128.3 . 6 . 0-65535 . 5432", elements);
        Assert.DoesNotContain(elements, e => e.Contains("198.18.128.4"));
    }

    [Fact]
    public void Container_reference_to_a_missing_container_allows_nothing_yet() =>
        Assert.Equal(["managed4 198.18.128.2"], Compile(Facts.Container("a", "198.18.128.2", "output:\n  - container: ghost\n")));

    [Fact]
    public void Network_restricts_the_source_address()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - network: back\n    ips: [198.19.0.10]\n");
        a = a with { Networks = [.. a.Networks, new NetworkAttachment("back", "back-id", IPAddress.Parse("198.18.129.2"), null)] };
        Assert.Contains("out4 198.18.129.2 . 198.19.0.10 . 0-255 . 0-65535 . 0-65535", Compile(a));
        Assert.DoesNotContain(Compile(a), e => e.StartsWith("out4 198.18.128.2"));
    }

    [Fact]
    public void Published_ports_open_only_what_mapped_ports_allows()
    {
        PublishedPort[] ports = [new(8080, L4Proto.Tcp, "0.0.0.0", 18080), new(8080, L4Proto.Tcp, "::", 18080)];
        var a = Facts.Container("a", "198.18.128.2", "mapped_ports:\n  localhost: {allow: true}\n  external: {allow: true, ips: [198.19.0.20]}\n", ports: ports);
        Assert.Equal([
            "local4 198.18.128.2 . 6 . 8080",
            "managed4 198.18.128.2",
            "pub4 198.19.0.20 . 198.18.128.2 . 6 . 8080",
        ], Compile(a));
        var closed = Facts.Container("b", "198.18.128.3", ports: ports);
        Assert.Equal(["managed4 198.18.128.3"], Compile(closed));
    }

    [Fact]
    public void Invalid_labels_compile_to_drop_all()
    {
        var a = Facts.Container("a", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n    oops: true\n");
        Assert.Equal(["managed4 198.18.128.2"], Compile(a));
    }

    [Fact]
    public void Policy_larger_than_the_element_limit_is_drop_all_with_an_error()
    {
        // within the parser's count (one address), past the limit with this container's 16 addresses
        var ips = string.Join(", ", Enumerable.Range(0, 20).Select(i => $"198.19.{i}.1"));
        var ports = string.Join(", ", Enumerable.Range(1, 20).Select(p => (p * 2).ToString()));
        var a = Facts.Container("a", "198.18.128.2", $"output:\n  - ips: [{ips}]\n    proto: tcp\n    dst_ports: [{ports}]\n");
        a = a with { Networks = [.. Enumerable.Range(2, 16).Select(i => new NetworkAttachment($"n{i}", $"n{i}", IPAddress.Parse($"198.18.{i}.2"), null))] };
        var decision = LabelParser.Decide(a.Labels);
        Assert.IsType<PolicyDecision.Enforced>(decision);
        var result = Compiler.Compile(a, decision, []);
        Assert.Equal("policy expands to 6400 set elements, more than the limit of 4096; dropping all traffic", result.Error);
        Assert.All(result.Fragment.Elements, e => Assert.True(NftSets.KeptWhenFailClosed(e.Set)));
        Assert.Equal(16, result.Fragment.Elements.Count(e => e.Set == "managed4"));
    }
    [Fact]
    public void Icmp_types_of_a_hosts_rule_limit_its_elements_like_those_of_an_ips_rule()
    {
        // the compiler used to give `hosts:` rules any ICMP type, whatever `icmp_types` said
        var self = Facts.Container("a", "198.18.128.2", "output:\n  - hosts: [ping.example.com]\n    proto: icmp\n    icmp_types: [echo-request]\n");
        var hosts = new Dictionary<string, HostAddresses> { ["ping.example.com"] = new("ping.example.com",
            [(IPAddress.Parse("198.19.0.10"), DateTimeOffset.UnixEpoch.AddDays(20000))]) };
        var elements = Compiler.Compile(self, LabelParser.Decide(self.Labels), [], hosts).Fragment.Elements
            .Where(e => e.Set == "outh4").Select(e => e.Key).ToList();
        Assert.Equal(["outh4 198.18.128.2 . 198.19.0.10 . 1 . 2048-2303 . 0-65535"], elements);
    }
}
