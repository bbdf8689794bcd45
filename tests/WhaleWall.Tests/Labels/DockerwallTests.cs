using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Labels;

public class DockerwallTests
{
    private static readonly GatewayConfig AllBridges = GatewayConfig.Parse("", null);

    private static ContainerFacts On(string network, Dictionary<string, string>? labels = null, string driver = "bridge") =>
        new("c-id", "c", true, (labels ?? []).ToImmutableDictionary(),
            [new NetworkAttachment(network, network + "-id", IPAddress.Parse("198.18.130.5"), null, 24, 128, driver)], [],
            [IPAddress.Parse("198.19.0.53")]);

    private static IReadOnlyList<string> Compile(ContainerFacts facts, GatewayConfig? gateway) =>
        Compiler.Compile(facts, ContainerDecider.Decide(new DecisionContext(gateway), facts).Policy, []).Fragment.Elements.Where(e => !Facts.IsDropCounter(e)).Select(e => e.Key).ToList();

    [Theory]
    [InlineData("a.example.com", true)]
    [InlineData("*.example.com", true)]
    [InlineData("example.com.", true)]
    [InlineData("*example.com", false)]
    [InlineData("a.*.example.com", false)]
    [InlineData("*", false)]
    [InlineData("exa mple.com", false)]
    [InlineData("localhost", false)]
    public void Host_names_and_one_label_wildcards(string name, bool valid) =>
        Assert.Equal(valid, OutboundList.IsHostName(name));

    [Fact]
    public void Outbound_list_takes_addresses_names_and_dns()
    {
        var (rules, errors) = OutboundList.Parse("198.19.0.10, 198.19.1.0/24,api.test.example,_dns_", "dockerwall.outbound");
        Assert.Empty(errors);
        Assert.Equal(2, rules.Count(r => r.ToResolvers));
        // one rule per entry (each names its entry: RuleSourceTests)
        Assert.Contains(rules, r => r.Ips.SequenceEqual([AddressSyntax.Parse("198.19.0.10").Range!]));
        Assert.Contains(rules, r => r.Ips.SequenceEqual([AddressSyntax.Parse("198.19.1.0/24").Range!]));
        Assert.Contains(rules, r => r.HostsOrEmpty.SequenceEqual(["api.test.example"]));
    }

    [Theory]
    [InlineData("010.0.0.1")]
    [InlineData("198.19.0.0/024")]
    [InlineData("198.19.0.1-198.19.0.010")]
    [InlineData("::ffff:010.0.0.1")]
    public void Outbound_address_with_leading_zeros_is_an_error_not_octal(string entry)
    {
        var (rules, errors) = OutboundList.Parse("198.19.0.10," + entry, "dockerwall.outbound");
        Assert.Equal("[1]", Assert.Single(errors).Path);
        Assert.DoesNotContain(rules, r => r.Ips.Any(i => i.ToString().StartsWith("8.")));
    }

    [Fact]
    public void Bad_outbound_entry_fails_closed_naming_the_entry()
    {
        var decision = ContainerDecider.Decide(DecisionContext.Default, On("net", new() { ["dockerwall.outbound"] = "198.19.0.10,not a host" })).Policy;
        var error = Assert.Single(Assert.IsType<PolicyDecision.FailClosed>(decision).Errors);
        Assert.Equal(("dockerwall.outbound", "[1]"), (error.Label, error.Path));
    }

    [Fact]
    public void Dockerwall_label_alone_opts_in_with_its_list()
    {
        var elements = Compile(On("net", new() { ["dockerwall.outbound"] = "198.19.0.10,_dns_" }), null);
        Assert.Contains("out4 198.18.130.5 . 198.19.0.10 . 0-255 . 0-65535 . 0-65535", elements);
        Assert.Contains("out4 198.18.130.5 . 198.19.0.53 . 17 . 0-65535 . 53", elements);
        Assert.Contains("out4 198.18.130.5 . 198.19.0.53 . 6 . 0-65535 . 53", elements);
    }

    [Fact]
    public void Without_gateway_mode_an_unlabeled_container_is_left_alone() =>
        Assert.Empty(Compile(On("net"), null));

    [Fact]
    public void Unlabeled_container_on_a_gateway_network_gets_the_default_outbound_and_its_neighbours()
    {
        var elements = Compile(On("net"), AllBridges);
        Assert.Equal([
            "in4 198.18.130.0-198.18.130.255 . 198.18.130.5 . 0-255 . 0-65535",
            "managed4 198.18.130.5",
            "out4 198.18.130.5 . 198.18.130.0-198.18.130.255 . 0-255 . 0-65535 . 0-65535",
            "out4 198.18.130.5 . 198.19.0.53 . 17 . 0-65535 . 53",
            "out4 198.18.130.5 . 198.19.0.53 . 6 . 0-65535 . 53",
        ], elements);
    }

    [Fact]
    public void Gateway_networks_can_be_listed_and_excluded()
    {
        var config = GatewayConfig.Parse("front, back", "198.19.0.10");
        Assert.NotEmpty(Compile(On("front"), config));
        Assert.Empty(Compile(On("other"), config));
        Assert.Empty(Compile(On("net"), GatewayConfig.Parse("!net", null)));
        Assert.NotEmpty(Compile(On("net2"), GatewayConfig.Parse("!net", null)));
        Assert.Empty(Compile(On("ov", driver: "overlay"), AllBridges));
        Assert.Contains("out4 198.18.130.5 . 198.19.0.10 . 0-255 . 0-65535 . 0-65535", Compile(On("front"), config));
    }

    [Fact]
    public void Whalewall_labels_win_over_the_default_outbound_but_keep_the_neighbours()
    {
        var labels = new Dictionary<string, string> { ["whalewall.enabled"] = "true" };
        var elements = Compile(On("net", labels), AllBridges);
        Assert.DoesNotContain(elements, e => e.Contains("198.19.0.53"));
        Assert.Contains("in4 198.18.130.0-198.18.130.255 . 198.18.130.5 . 0-255 . 0-65535", elements);
    }

    [Fact]
    public void Gateway_subnets_are_programmed_for_gateway_networks_only()
    {
        DockerNetwork[] networks =
        [
            new("net", "1", "bridge", [AddressSyntax.Parse("198.18.130.0/24").Range!]),
            new("host", "2", "host", []),
            new("ov", "3", "overlay", [AddressSyntax.Parse("198.18.200.0/24").Range!]),
        ];
        Assert.Equal(["gw4 198.18.130.0-198.18.130.255"], Compiler.Gateways(networks, AllBridges).Elements.Select(e => e.Key));
    }
}
