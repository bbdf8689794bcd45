using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Labels;

/// <summary>Every rule says where it was written: label, path and (for YAML) line.</summary>
public sealed class RuleSourceTests
{
    [Fact]
    public void Block_rules_carry_their_path_and_first_line()
    {
        var policy = Parse("""
            output:
              - ips: [198.19.0.10]
                proto: tcp
                dst_ports: [443]
              - container: db
                proto: tcp
              - hosts: [api.test.example]
                proto: tcp
              - proto: icmp
                icmp_types: [echo-request]
            mapped_ports:
              localhost:
                allow: true
              external:
                allow: true
                ips: [198.19.0.0/24]
            """);
        Assert.Equal(
            [new RuleSource("whalewall.rules", "output[0]", 2), new("whalewall.rules", "output[1]", 5),
             new("whalewall.rules", "output[2]", 7), new("whalewall.rules", "output[3]", 9)],
            policy.Output.Select(r => r.Source));
        Assert.Equal(new RuleSource("whalewall.rules", "mapped_ports.localhost", 13), policy.MappedPorts.Localhost.Source);
        Assert.Equal(new RuleSource("whalewall.rules", "mapped_ports.external", 15), policy.MappedPorts.External.Source);
    }

    [Fact]
    public void Flow_style_rules_on_one_line_each_have_their_index()
    {
        var policy = Parse("output: [{ips: [198.19.0.1]}, {container: db}]\nmapped_ports: {external: {allow: true}}");
        Assert.Equal([new RuleSource("whalewall.rules", "output[0]", 1), new("whalewall.rules", "output[1]", 1)], policy.Output.Select(r => r.Source));
        Assert.Equal(new RuleSource("whalewall.rules", "mapped_ports.external", 2), policy.MappedPorts.External.Source);
    }

    [Fact]
    public void Outbound_list_entries_each_become_a_rule_named_by_their_index()
    {
        var (rules, errors) = OutboundList.Parse("198.19.0.10, api.test.example,_dns_,198.19.1.0/24", "dockerwall.outbound");
        Assert.Empty(errors);
        Assert.Equal(["[0]", "[1]", "[2]", "[2]", "[3]"], rules.Select(r => r.Source!.Path));
        Assert.All(rules, r => Assert.Equal(("dockerwall.outbound", (int?)null), (r.Source!.Label, r.Source.Line)));
        Assert.Equal(["api.test.example"], rules[1].HostsOrEmpty.ToArray());
        Assert.True(rules[2].ToResolvers && rules[3].ToResolvers);
    }

    [Fact]
    public void Default_outbound_rules_name_DEFAULT_OUTBOUND()
    {
        var (context, _) = DecisionContext.FromSettings("", "_dns_,198.19.0.10");
        var facts = Facts.Container("web", "198.18.0.2", enabled: false) with { Labels = [] };
        var policy = Assert.IsType<PolicyDecision.Enforced>(ContainerDecider.Decide(context!, facts).Policy).Policy;
        Assert.Equal(["DEFAULT_OUTBOUND [0]", "DEFAULT_OUTBOUND [0]", "DEFAULT_OUTBOUND [1]"], policy.Output.Select(r => r.Source!.ToString()));
    }

    [Fact]
    public void Dockerwall_outbound_rules_follow_the_whalewall_rules()
    {
        var facts = Facts.Container("web", "198.18.0.2", rules: "output:\n  - ips: [198.19.0.1]",
            labels: new Dictionary<string, string> { ["dockerwall.outbound"] = "198.19.0.2" });
        var policy = Assert.IsType<PolicyDecision.Enforced>(ContainerDecider.Decide(DecisionContext.Default, facts).Policy).Policy;
        Assert.Equal(["whalewall.rules output[0] (line 2)", "dockerwall.outbound [0]"], policy.Output.Select(r => r.Source!.ToString()));
    }

    private static ContainerPolicy Parse(string yaml)
    {
        var result = LabelParser.ParseRules(yaml);
        Assert.Empty(result.Errors);
        return result.Policy;
    }
}
