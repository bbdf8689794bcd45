using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;
using WhaleWall.Host;
using Xunit;

namespace WhaleWall.Tests.Decide;

public class DecisionTests
{
    private static (int Code, string Out) Check(IDictionary<string, string>? env, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CheckCommand.Create(k => env?.TryGetValue(k, out var v) == true ? v : null, stdout, stderr).Parse(args).Invoke();
        return (code, stdout + stderr.ToString());
    }

    // ---- check decides as the daemon does (issue 12, point 4)

    [Fact]
    public void Check_of_a_dockerwall_outbound_label_alone_opts_the_container_in_as_the_daemon_does()
    {
        var (code, text) = Check(null, "--label", "dockerwall.outbound=198.19.0.10,_dns_");
        Assert.True(code == 0, text);
        Assert.Contains("labels: ok (3 output rules", text);
    }

    [Fact]
    public void Check_fails_an_outbound_list_that_the_daemon_fails_closed()
    {
        var (code, text) = Check(null, "--label", "dockerwall.outbound=nope,*.example.com");
        Assert.True(code == 1, text);
        Assert.Contains("labels: INVALID, would be drop-all:", text);
        Assert.Contains("\"nope\" is not an address", text);
    }

    [Fact]
    public void Check_reads_deny_by_default_mode_from_the_daemons_variables_and_flags_override_them()
    {
        var env = new Dictionary<string, string> { ["GATEWAY_NETWORKS"] = "front", ["DEFAULT_OUTBOUND"] = "198.19.0.10" };
        var (code, text) = Check(env, "--label", "some.label=x", "--network", "front");
        Assert.True(code == 0, text);
        Assert.Contains("deny-by-default mode: gateway networks front, default outbound \"198.19.0.10\"", text);
        Assert.Contains("labels: ok (1 output rules", text);

        (code, text) = Check(env, "--label", "some.label=x", "--network", "front", "--gateway-networks", "back");
        Assert.True(code == 0, text);
        Assert.Contains("labels: not managed", text);

        (code, text) = Check(env, "--label", "some.label=x", "--network", "front", "--default-outbound", "nope");
        Assert.True(code == 2, text);
        Assert.Contains("DEFAULT_OUTBOUND: [0]: \"nope\" is not an address", text);
    }

    [Fact]
    public void Check_takes_networks_and_network_mode_from_the_compose_file()
    {
        var dir = Directory.CreateTempSubdirectory("ww-check-");
        try
        {
            var file = Path.Combine(dir.FullName, "compose.yml");
            File.WriteAllText(file, """
                name: shop
                services:
                  web:
                    networks: [front]
                  metrics:
                    network_mode: host
                    labels: [whalewall.enabled=true]
                  sidecar:
                    network_mode: "service:web"
                  lan:
                    networks: { lan: {}, front: {} }
                    labels: { dockerwall.outbound: _dns_ }
                networks:
                  front: {}
                  lan: { driver: macvlan }
                """);
            var (code, text) = Check(new Dictionary<string, string> { ["GATEWAY_NETWORKS"] = "shop_front" }, "--compose", file);
            Assert.True(code == 1, text);
            Assert.Contains("web: ok (2 output rules", text);       // DEFAULT_OUTBOUND _dns_ on a gateway network
            Assert.Contains("metrics: UNFILTERABLE", text);
            Assert.Contains("network_mode host", text);
            Assert.Contains("sidecar: not managed", text);          // no labels, not on a gateway network itself
            Assert.Contains("lan: UNFILTERABLE", text);
            Assert.Contains("network shop_lan (macvlan)", text);
        }
        finally { dir.Delete(true); }
    }

    // ---- what WhaleWall cannot see (issue 12, point 10)

    private static ContainerFacts Container(string? mode = null, params (string Name, string Driver, string V4)[] networks) =>
        new("c-id", "c", true, ImmutableDictionary<string, string>.Empty.Add(LabelKeys.Enabled, "true"),
            [.. networks.Select(n => new NetworkAttachment(n.Name, n.Name + "-id", IPAddress.Parse(n.V4), null, 24, 128, n.Driver))], [],
            NetworkMode: mode);

    [Theory]
    [InlineData(null, "bridge", Outcome.Enforced)]
    [InlineData(null, "", Outcome.Enforced)]          // driver not known yet: counted as bridge
    [InlineData(null, "macvlan", Outcome.Unfilterable)]
    [InlineData(null, "ipvlan", Outcome.Unfilterable)]
    [InlineData(null, "overlay", Outcome.Unfilterable)]
    [InlineData(null, "weave", Outcome.Unfilterable)]
    [InlineData("host", "host", Outcome.Unfilterable)]
    [InlineData("container:0123abcd", "bridge", Outcome.Unfilterable)]
    public void Opted_in_containers_whose_traffic_WhaleWall_cannot_see_are_unfilterable_never_enforced(string? mode, string driver, Outcome outcome)
    {
        var decision = ContainerDecider.Decide(DecisionContext.Default, Container(mode, ("n", driver, "198.18.140.2")));
        Assert.Equal(outcome, decision.Outcome);
        Assert.Equal(outcome == Outcome.Unfilterable, decision.UnfilterableWarning("c") is not null);
        Assert.Equal(outcome == Outcome.Unfilterable ? 1 : 0, decision.Reasons().Length);
    }

    [Fact]
    public void Invalid_labels_on_a_host_network_container_are_unfilterable_too_a_drop_all_there_drops_nothing()
    {
        var facts = Container("host") with { Labels = ImmutableDictionary<string, string>.Empty.Add(LabelKeys.Enabled, "maybe") };
        var decision = ContainerDecider.Decide(DecisionContext.Default, facts);
        Assert.IsType<PolicyDecision.FailClosed>(decision.Policy);
        Assert.Equal(Outcome.Unfilterable, decision.Outcome);
        Assert.Equal(2, decision.Reasons().Length);
    }

    [Fact]
    public void Unmanaged_containers_on_macvlan_are_just_unmanaged() =>
        Assert.Equal(Outcome.Unmanaged, ContainerDecider.Decide(DecisionContext.Default,
            Container(null, ("lan", "macvlan", "198.18.140.2")) with { Labels = ImmutableDictionary<string, string>.Empty }).Outcome);

    [Fact]
    public void A_host_network_container_puts_no_address_in_any_set_not_even_one_its_facts_claim()
    {
        // Docker reports no address for it; if anything ever did, it would be the host's
        var facts = Container("host", ("host", "host", "198.18.140.1")) with { Ports = [new PublishedPort(80, L4Proto.Tcp, "0.0.0.0", 80)] };
        var policy = ContainerDecider.Decide(DecisionContext.Default, facts).Policy;
        Assert.Empty(Compiler.Compile(facts, policy, [facts]).Fragment.Elements);
    }

    [Fact]
    public void Addresses_on_macvlan_and_overlay_stay_out_of_the_sets_the_bridge_address_is_managed()
    {
        var self = Container(null, ("front", "bridge", "198.18.140.2"), ("lan", "macvlan", "198.18.141.2"), ("ov", "overlay", "198.18.142.2"))
            with { Labels = ImmutableDictionary<string, string>.Empty.Add(LabelKeys.Enabled, "true").Add(LabelKeys.Rules, "output: [{container: db}]") };
        var db = Container(null, ("front", "bridge", "198.18.140.3"), ("ov", "overlay", "198.18.142.3")) with { Id = "db-id", Name = "db" };
        var keys = Compiler.Compile(self, ContainerDecider.Decide(DecisionContext.Default, self).Policy, [db]).Fragment.Elements.Select(e => e.Key).ToList();
        Assert.Contains(keys, k => k.Contains("198.18.140.2"));
        Assert.Contains(keys, k => k.Contains("198.18.140.2 . 198.18.140.3"));
        Assert.DoesNotContain(keys, k => k.Contains("198.18.141.") || k.Contains("198.18.142."));
    }

    [Fact]
    public void Addresses_on_an_unknown_driver_stay_filtered_where_its_traffic_does_cross_the_hooks()
    {
        var self = Container(null, ("plug", "weave", "198.18.143.2"));
        var decision = ContainerDecider.Decide(DecisionContext.Default, self);
        Assert.Equal(Outcome.Unfilterable, decision.Outcome);
        Assert.Contains(Compiler.Compile(self, decision.Policy, []).Fragment.Elements, e => e.Key.Contains("198.18.143.2"));
    }

    [Fact]
    public void A_compile_error_makes_an_enforced_decision_fail_closed_with_the_error_as_reason()
    {
        var decision = ContainerDecider.Decide(DecisionContext.Default, Container(null, ("n", "bridge", "198.18.140.2")));
        var compiled = new CompileResult(Firewall.Nft.Fragment.Empty("c-id"), "policy expands to 5000 set elements");
        Assert.Equal(Outcome.FailClosed, decision.After(compiled));
        Assert.Equal(["policy expands to 5000 set elements"], decision.Reasons(compiled).AsEnumerable());
    }

    [Fact]
    public void Reasons_and_the_warning_are_one_line_each_whatever_the_labels_and_network_names_hold()
    {
        var facts = Container(null, ("lan\nFAKE LOG LINE", "macvlan", "198.18.140.2")) with
        {
            Labels = ImmutableDictionary<string, string>.Empty.Add(LabelKeys.Enabled, "true").Add("dockerwall.outbound", "x\ny,\u2028z\\"),
        };
        var decision = ContainerDecider.Decide(DecisionContext.Default, facts);
        Assert.All(decision.Reasons(), r => Assert.DoesNotContain(r, c => char.IsControl(c) || c is '\u2028' or '\u2029'));
        Assert.Contains(decision.Reasons(), r => r.Contains(@"lan\nFAKE LOG LINE"));
        Assert.DoesNotContain('\n', decision.UnfilterableWarning("c\nd")!);
    }

    [Theory]
    [InlineData(null, null, true, false)]
    [InlineData("", null, true, true)]
    [InlineData("front,!back", "_dns_", true, true)]
    [InlineData(null, "_dns_", false, false)]
    [InlineData("front", "nope", false, false)]
    public void Settings_make_a_context_or_say_why_not(string? networks, string? outbound, bool valid, bool gatewayMode)
    {
        var (context, errors) = DecisionContext.FromSettings(networks, outbound);
        Assert.Equal(valid, context is not null);
        Assert.Equal(valid, errors.IsEmpty);
        Assert.Equal(gatewayMode, context?.Gateway is not null);
    }
}
