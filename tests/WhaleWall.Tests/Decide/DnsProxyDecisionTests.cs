using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Decide;

/// <summary>The decision under the DNS proxy (issue 15): the wildcard grammar in labels, the
/// proxy's own labels, and the container's DNS policy.</summary>
public class DnsProxyDecisionTests
{
    private static readonly DecisionContext On = DecisionContext.Default with { DnsProxy = true };

    private static Decision Decide(string host, DecisionContext context, params (string Key, string Value)[] extra)
    {
        var facts = Facts.Container("a", "198.18.128.2", $"output:\n  - hosts: [\"{host}\"]\n    proto: tcp\n    dst_ports: [443]\n");
        foreach (var (k, v) in extra) facts = facts with { Labels = facts.Labels.SetItem(k, v) };
        return ContainerDecider.Decide(context, facts);
    }

    [Theory]
    [InlineData("*.svc.example.test", "*.svc.example.test")]
    [InlineData("**.svc.example.test", "**.svc.example.test")]
    [InlineData("*.*.Svc.Example.TEST.", "*.*.svc.example.test")]
    [InlineData("bücher.example.test", "xn--bcher-kva.example.test")]
    public void The_proxy_accepts_the_wildcard_grammar_and_keeps_names_normalised(string written, string kept)
    {
        var decision = Decide(written, On);
        var policy = Assert.IsType<PolicyDecision.Enforced>(decision.Policy).Policy;
        Assert.Equal(kept, Assert.Single(policy.Output[0].HostsOrEmpty));
        Assert.NotNull(decision.Dns);
    }

    [Theory]
    [InlineData("a*.example.test")]
    [InlineData("a.*.example.test")]
    [InlineData("*.**.example.test")]
    [InlineData("**")]
    [InlineData("*.")]
    public void Malformed_wildcards_fail_closed_under_the_proxy(string written)
    {
        var decision = Decide(written, On);
        Assert.IsType<PolicyDecision.FailClosed>(decision.Policy);
        Assert.Null(decision.Dns);
    }

    [Theory]
    [InlineData("*.svc.example.test")]
    [InlineData("**.svc.example.test")]
    public void Without_the_proxy_wildcards_are_refused_saying_they_need_it(string written)
    {
        var closed = Assert.IsType<PolicyDecision.FailClosed>(Decide(written, DecisionContext.Default).Policy);
        Assert.Contains("DNS proxy", closed.Errors[0].ToString());
    }

    [Fact]
    public void The_proxy_labels_are_parsed_and_their_errors_fail_closed()
    {
        var nx = Decide("api.example.test", On, (DnsLabels.Reject, "nxdomain"), (DnsLabels.Types, "HTTPS"));
        Assert.Equal(RejectMode.NxDomain, nx.Dns!.Reject);
        Assert.True(nx.Dns.AllowsType(DnsTypes.HTTPS));
        Assert.False(nx.Dns.ResolveAny);
        var bad = Decide("api.example.test", On, (DnsLabels.Reject, "drop"));
        var closed = Assert.IsType<PolicyDecision.FailClosed>(bad.Policy);
        Assert.Contains(closed.Errors, e => e.Label == DnsLabels.Reject);
    }

    [Fact]
    public void A_rule_reaching_port_53_may_resolve_any_name()
    {
        var facts = Facts.Container("a", "198.18.128.2", "output:\n  - proto: udp\n    dst_ports: [53]\n");
        Assert.True(ContainerDecider.Decide(On, facts).Dns!.ResolveAny);
    }
}
