using System.Collections.Immutable;
using WhaleWall.Firewall.Dns;
using Xunit;
using static WhaleWall.Tests.Dns.DnsTestData;

namespace WhaleWall.Tests.Dns;

public class QueryDeciderTests
{
    private static QueryDecision Ask(DnsPolicy policy, string name, ushort type = DnsTypes.A, ushort cls = DnsTypes.ClassIn, int opcode = 0) =>
        QueryDecider.Decide(policy, opcode, [new DnsQuestion(name, type, cls)]);

    [Theory]
    // policy: names only
    [InlineData("names", "api.example.com", true, true)]
    [InlineData("names", "API.Example.COM.", true, true)]
    [InlineData("names", "a.svc.example.test", true, true)]
    [InlineData("names", "a.b.svc.example.test", false, false)]
    [InlineData("names", "svc.example.test", false, false)]
    [InlineData("names", "evilsvc.example.test", false, false)]
    [InlineData("names", "exfil-4142434445.attacker.example", false, false)]
    // policy: resolve any (dns or a port-53 rule): forwarded, but opens only its names
    [InlineData("any", "api.example.com", true, true)]
    [InlineData("any", "exfil-4142434445.attacker.example", true, false)]
    public void Only_names_in_the_rules_are_forwarded_unless_the_container_may_resolve_any(string kind, string name, bool forwarded, bool nameAllowed)
    {
        var policy = kind == "any" ? ResolveAny("api.example.com", "*.svc.example.test") : Policy("api.example.com", "*.svc.example.test");
        var decision = Ask(policy, name);
        if (forwarded)
        {
            var forward = Assert.IsType<QueryDecision.Forward>(decision);
            Assert.Equal(nameAllowed, forward.NameAllowed);
            Assert.Equal(name.ToLowerInvariant().TrimEnd('.'), forward.Name.Value);
        }
        else Assert.Equal(DnsRcode.Refused, Assert.IsType<QueryDecision.Refuse>(decision).Rcode);
    }

    [Fact]
    public void A_container_labelled_nxdomain_gets_nxdomain_for_names_it_may_not_resolve()
    {
        var policy = Policy("api.example.com") with { Reject = RejectMode.NxDomain };
        Assert.Equal(DnsRcode.NxDomain, Assert.IsType<QueryDecision.Refuse>(Ask(policy, "other.example.com")).Rcode);
        Assert.IsType<QueryDecision.Forward>(Ask(policy, "api.example.com"));
    }

    [Theory]
    [InlineData(DnsTypes.A, true)]
    [InlineData(DnsTypes.AAAA, true)]
    [InlineData(DnsTypes.HTTPS, false)]
    [InlineData(DnsTypes.SVCB, false)]
    [InlineData(DnsTypes.TXT, false)]
    [InlineData(DnsTypes.MX, false)]
    [InlineData(DnsTypes.CNAME, false)]
    [InlineData(DnsTypes.ANY, false)]
    [InlineData(DnsTypes.AXFR, false)]
    [InlineData((ushort)999, false)]
    public void Only_A_and_AAAA_are_asked_unless_the_label_allows_more(ushort type, bool forwarded)
    {
        var decision = Ask(ResolveAny("api.example.com"), "api.example.com", type);
        Assert.Equal(forwarded, decision is QueryDecision.Forward);
        if (!forwarded) Assert.Equal(DnsRcode.Refused, ((QueryDecision.Refuse)decision).Rcode);
        var withHttps = ResolveAny("api.example.com") with { ExtraTypes = [DnsTypes.HTTPS, DnsTypes.SVCB] };
        Assert.IsType<QueryDecision.Forward>(Ask(withHttps, "api.example.com", DnsTypes.HTTPS));
        Assert.IsType<QueryDecision.Refuse>(Ask(withHttps, "api.example.com", DnsTypes.TXT));
    }

    [Fact]
    public void Malformed_questions_are_answered_without_forwarding()
    {
        var policy = ResolveAny("api.example.com");
        Assert.Equal(DnsRcode.Refused, Assert.IsType<QueryDecision.Refuse>(Ask(policy, "api.example.com", cls: 3)).Rcode); // CHAOS
        Assert.Equal(DnsRcode.NotImp, Assert.IsType<QueryDecision.Refuse>(Ask(policy, "api.example.com", opcode: 2)).Rcode);
        Assert.Equal(DnsRcode.FormErr, Assert.IsType<QueryDecision.Refuse>(QueryDecider.Decide(policy, 0, [])).Rcode);
        Assert.Equal(DnsRcode.FormErr, Assert.IsType<QueryDecision.Refuse>(QueryDecider.Decide(policy, 0,
            [new DnsQuestion("api.example.com", 1, 1), new DnsQuestion("x.example.com", 1, 1)])).Rcode);
        var label63 = new string('a', 63);
        var long254 = string.Join('.', label63, label63, label63, new string('b', 62));
        Assert.IsType<QueryDecision.Refuse>(Ask(policy, long254));                          // over 253
        Assert.IsType<QueryDecision.Refuse>(Ask(policy, new string('a', 64) + ".example.com")); // label over 63
        Assert.IsType<QueryDecision.Refuse>(Ask(policy, "a b.example.com"));
        Assert.IsType<QueryDecision.Refuse>(Ask(policy, ""));
    }

    [Fact]
    public void A_container_without_names_or_port_53_resolves_nothing()
    {
        Assert.IsType<QueryDecision.Refuse>(Ask(DnsPolicy.Nothing, "api.example.com"));
        Assert.IsType<QueryDecision.Refuse>(Ask(DnsPolicy.Nothing, "localhost"));
    }

    [Fact]
    public void In_audit_mode_a_query_the_policy_would_refuse_is_forwarded_and_says_why()
    {
        var audit = Policy("api.example.com") with { Audit = true };
        var other = Assert.IsType<QueryDecision.Forward>(Ask(audit, "other.example.com"));
        Assert.False(other.NameAllowed);
        Assert.Contains("not in the container's rules", other.WouldRefuse);
        Assert.Contains("TXT", Assert.IsType<QueryDecision.Forward>(Ask(audit, "api.example.com", type: 16)).WouldRefuse);
        var allowed = Assert.IsType<QueryDecision.Forward>(Ask(audit, "api.example.com"));
        Assert.Equal((true, (string?)null), (allowed.NameAllowed, allowed.WouldRefuse));
        // not a query, or no name: refused in audit mode too (nothing to forward)
        Assert.IsType<QueryDecision.Refuse>(Ask(audit, "api.example.com", opcode: 2));
        Assert.IsType<QueryDecision.Refuse>(Ask(audit, "a b.example.com"));
        // enforce: the same queries are refused
        Assert.IsType<QueryDecision.Refuse>(Ask(audit with { Audit = false }, "other.example.com"));
    }
}
