using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Decide;

/// <summary>Audit mode through the one decision entry point: the policy is the enforce-mode
/// policy; only the mode differs, and only a valid mode label or the global setting makes it audit.</summary>
public sealed class AuditModeTests
{
    private const string Rules = "output:\n  - ip: 198.18.200.1\n    proto: tcp\n    port: 80\n";

    private static ContainerFacts Labelled(params (string Key, string Value)[] extra) =>
        Facts.Container("web", "198.18.128.2", Rules, labels: extra.ToDictionary(e => e.Key, e => e.Value));

    [Fact]
    public void The_mode_label_makes_a_container_audited_with_the_same_policy_as_enforced()
    {
        var audited = ContainerDecider.Decide(DecisionContext.Default, Labelled((LabelKeys.Mode, "audit")));
        var enforced = ContainerDecider.Decide(DecisionContext.Default, Labelled());
        Assert.Equal(PolicyMode.Audit, audited.Mode);
        Assert.True(audited.Learn);
        Assert.Equal(PolicyMode.Enforce, enforced.Mode);
        Assert.False(enforced.Learn);
        var facts = Labelled();
        Assert.Equal(Compiler.Compile(facts, enforced.Policy, []).Fragment.Elements.Select(e => e.ToString()), Compiler.Compile(facts, audited.Policy, []).Fragment.Elements.Select(e => e.ToString()));
    }

    [Fact]
    public void The_global_mode_applies_unless_the_label_insists_on_enforce()
    {
        var audit = DecisionContext.Default with { Mode = PolicyMode.Audit };
        Assert.Equal(PolicyMode.Audit, ContainerDecider.Decide(audit, Labelled()).Mode);
        Assert.Equal(PolicyMode.Enforce, ContainerDecider.Decide(audit, Labelled((LabelKeys.Mode, "enforce"))).Mode);
    }

    [Theory]
    [InlineData("Audit ")]
    [InlineData("AUDIT")]
    public void The_mode_is_read_case_insensitively(string value) =>
        Assert.Equal(PolicyMode.Audit, ContainerDecider.Decide(DecisionContext.Default, Labelled((LabelKeys.Mode, value))).Mode);

    [Theory]
    [InlineData("audits")]
    [InlineData("")]
    [InlineData("permissive")]
    [InlineData("audit\u202e")]
    public void An_invalid_mode_fails_the_container_closed_and_enforced(string value)
    {
        // even under a global audit: a typo never opens anything
        var d = ContainerDecider.Decide(DecisionContext.Default with { Mode = PolicyMode.Audit }, Labelled((LabelKeys.Mode, value)));
        Assert.Equal(PolicyMode.Enforce, d.Mode);
        var closed = Assert.IsType<PolicyDecision.FailClosed>(d.Policy);
        Assert.Contains(closed.Errors, e => e.Label == LabelKeys.Mode);
    }

    [Fact]
    public void An_invalid_learn_label_fails_closed_and_learn_true_records_an_enforced_container()
    {
        Assert.IsType<PolicyDecision.FailClosed>(ContainerDecider.Decide(DecisionContext.Default, Labelled((LabelKeys.Learn, "yes please"))).Policy);
        var learning = ContainerDecider.Decide(DecisionContext.Default, Labelled((LabelKeys.Learn, "true")));
        Assert.Equal((PolicyMode.Enforce, true), (learning.Mode, learning.Learn));
    }

    [Fact]
    public void An_unmanaged_container_is_never_audited_or_learned()
    {
        var d = ContainerDecider.Decide(DecisionContext.Default with { Mode = PolicyMode.Audit },
            Facts.Container("x", "198.18.128.3", enabled: false, labels: new Dictionary<string, string> { [LabelKeys.Mode] = "audit" }));
        Assert.Equal((PolicyMode.Enforce, false), (d.Mode, d.Learn));
    }

    [Fact]
    public void An_audited_container_has_its_addresses_in_the_audit_sets_and_the_same_allow_elements()
    {
        var facts = Labelled((LabelKeys.Mode, "audit"));
        var decision = ContainerDecider.Decide(DecisionContext.Default, facts);
        var audited = Compiler.Compile(facts, decision.Policy, [], audit: true).Fragment.Elements;
        var enforced = Compiler.Compile(facts, decision.Policy, []).Fragment.Elements;
        Assert.Equal(["auditin4", "auditout4"], audited.Select(e => e.Set).Where(s => s.StartsWith("audit")).Order());
        Assert.Equal(enforced, audited.Where(e => !e.Set.StartsWith("audit")));
        Assert.DoesNotContain(enforced, e => e.Set.StartsWith("audit"));
    }

    [Fact]
    public void A_fail_closed_audited_container_keeps_its_audit_elements() =>
        Assert.True(NftSets.KeptWhenFailClosed("auditout4") && NftSets.KeptWhenFailClosed("auditin6"));

    [Fact]
    public void Audit_counters_are_read_as_would_be_drops_of_the_container()
    {
        var counters = NftCounters.Read("""
            {"nftables": [{"set": {"family": "inet", "name": "auditout4", "table": "whalewall", "type": "ipv4_addr",
              "elem": [{"elem": {"val": "198.18.128.2", "counter": {"packets": 5, "bytes": 300}}}]}},
              {"set": {"family": "inet", "name": "auditin6", "table": "whalewall", "type": "ipv6_addr",
              "elem": [{"elem": {"val": "2001:db8::2", "counter": {"packets": 1, "bytes": 80}}}]}}]}
            """);
        Assert.Equal((IPAddress.Parse("198.18.128.2"), true, CountedVerdict.AuditDrop, 5UL),
            (counters[0].Container, counters[0].Egress, counters[0].Verdict, counters[0].Packets));
        Assert.Equal((false, "audit_drop"), (counters[1].Egress, counters[1].Verdict.Label()));
    }
}
