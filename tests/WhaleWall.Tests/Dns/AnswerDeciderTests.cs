using System.Collections.Immutable;
using WhaleWall.Firewall.Dns;
using Xunit;
using static WhaleWall.Tests.Dns.DnsTestData;

namespace WhaleWall.Tests.Dns;

public class AnswerDeciderTests
{
    private static readonly LearningLimits Limits = LearningLimits.Default with { PerName = 4, PerContainer = 6 };

    private static (AnswerDecision, LearnedAddresses) Decide(DnsPolicy policy, string name, UpstreamAnswer? answer = null,
        LearnedAddresses? learned = null, DateTimeOffset? now = null, SentQuery? sent = null)
    {
        sent ??= Sent(name);
        return AnswerDecider.Decide(policy, Forward(policy, name), sent, answer ?? Answer(sent),
            learned ?? LearnedAddresses.Empty, Limits, now ?? T0);
    }

    [Fact]
    public void A_rule_on_a_cname_target_opens_the_addresses_of_a_name_that_reaches_it()
    {
        // Cilium ties addresses to the query name only, so this rule would never match there
        var policy = ResolveAny("*.cdn.example.net");
        var sent = Sent("www.example.com");
        var answer = Answer(sent, Cname("www.example.com", "e1.cdn.example.net"), A("e1.cdn.example.net", "198.19.0.10"));
        var (decision, next) = Decide(policy, "www.example.com", answer, sent: sent);
        var release = Assert.IsType<AnswerDecision.Release>(decision);
        Assert.Equal(["e1.cdn.example.net"], release.Commit!.AllowedNames.Select(n => n.Value));
        Assert.Equal("www.example.com", release.Commit.QueryName.Value);
        Assert.Equal(["198.19.0.10"], release.Commit.Addresses.Select(a => a.Address.ToString()));
        Assert.Equal([0, 1], release.Keep.ToArray());
        Assert.Equal(1, next.Count(T0));
    }

    [Fact]
    public void A_name_the_container_may_resolve_but_not_reach_opens_nothing()
    {
        var sent = Sent("other.example.org");
        var answer = Answer(sent, A("other.example.org", "198.19.0.10"), A("junk.example.org", "198.19.0.11"));
        var (decision, next) = Decide(ResolveAny("api.example.com"), "other.example.org", answer, sent: sent);
        var release = Assert.IsType<AnswerDecision.Release>(decision);
        Assert.Null(release.Commit);
        Assert.Equal([0], release.Keep.ToArray()); // the off-chain record is not passed on either
        Assert.Same(LearnedAddresses.Empty, next);
    }

    [Fact]
    public void Upstream_errors_pass_through_and_teach_nothing()
    {
        var sent = Sent("api.example.com");
        foreach (var rcode in new[] { DnsRcode.NxDomain, DnsRcode.ServFail, DnsRcode.Refused })
        {
            var (decision, _) = Decide(Policy("api.example.com"), "api.example.com", Answer(sent, A("api.example.com", "198.19.0.10")) with { Rcode = rcode });
            var release = Assert.IsType<AnswerDecision.Release>(decision);
            Assert.Equal(rcode, release.Rcode);
            Assert.Empty(release.Keep);
            Assert.Null(release.Commit);
        }
    }

    [Fact]
    public void A_broken_chain_is_a_servfail()
    {
        var sent = Sent("api.example.com");
        var loop = Answer(sent, Cname("api.example.com", "b.example.com"), Cname("b.example.com", "api.example.com"));
        Assert.IsType<AnswerDecision.Fail>(Decide(Policy("api.example.com"), "api.example.com", loop).Item1);
    }

    [Fact]
    public void At_the_cap_new_addresses_are_refused_renewals_pass_and_the_answer_carries_only_what_was_committed()
    {
        var policy = Policy("**.example.com");
        var learned = LearnedAddresses.Empty;
        AnswerDecision.Release Ask(string name, params string[] addresses)
        {
            var sent = Sent(name);
            var (decision, next) = Decide(policy, name, Answer(sent, addresses.Select(a => A(name, a)).ToArray()), learned);
            learned = next;
            return Assert.IsType<AnswerDecision.Release>(decision);
        }

        // per name: 4
        var first = Ask("a.example.com", "198.19.0.1", "198.19.0.2", "198.19.0.3", "198.19.0.4", "198.19.0.5");
        Assert.Equal(4, first.Commit!.Addresses.Length);
        Assert.Equal(["198.19.0.5"], first.RefusedByCap.Select(a => a.ToString()));
        Assert.DoesNotContain("198.19.0.5", Addresses(Answer(Sent("a.example.com"), Enumerable.Range(1, 5).Select(i => A("a.example.com", $"198.19.0.{i}")).ToArray()), first.Keep));
        // per container: 6 in total, old addresses included
        var second = Ask("b.example.com", "198.19.1.1", "198.19.1.2", "198.19.1.3");
        Assert.Equal(2, second.Commit!.Addresses.Length);
        // full: a new name with only new addresses gets SERVFAIL, nothing opens
        var sentC = Sent("c.example.com");
        var (full, _) = Decide(policy, "c.example.com", Answer(sentC, A("c.example.com", "198.19.2.1")), learned);
        Assert.IsType<AnswerDecision.Fail>(full);
        // a renewal of known addresses still passes
        var renewed = Ask("a.example.com", "198.19.0.1");
        Assert.Equal(["198.19.0.1"], renewed.Commit!.Addresses.Select(a => a.Address.ToString()));
    }

    [Fact]
    public void Addresses_expire_after_ttl_plus_grace_and_free_the_cap()
    {
        var policy = Policy("**.example.com");
        var sentA = Sent("a.example.com");
        var (_, learned) = Decide(policy, "a.example.com", Answer(sentA, Enumerable.Range(1, 6).Select(i => A("a.example.com", $"198.19.0.{i}", ttl: 1)).ToArray()));
        Assert.Equal(4, learned.Count(T0));
        // TTL 1 is clamped to the 5 s floor, plus 30 s grace
        Assert.Equal(4, learned.Count(T0 + TimeSpan.FromSeconds(34)));
        Assert.Equal(0, learned.Count(T0 + TimeSpan.FromSeconds(35)));
        var sentB = Sent("b.example.com");
        var (later, _) = Decide(policy, "b.example.com", Answer(sentB, A("b.example.com", "198.19.9.9")), learned, T0 + TimeSpan.FromSeconds(36));
        Assert.Equal(TimeSpan.FromSeconds(90), Assert.IsType<AnswerDecision.Release>(later).Commit!.Addresses[0].Timeout); // 60 + 30
    }

    [Fact]
    public void Ttls_are_clamped_and_the_answer_never_outlives_the_kernel()
    {
        var limits = LearningLimits.Default;
        Assert.Equal(TimeSpan.FromSeconds(35), limits.KernelTimeout(0));
        Assert.Equal(TimeSpan.FromSeconds(330), limits.KernelTimeout(300));
        Assert.Equal(TimeSpan.FromSeconds(3630), limits.KernelTimeout(uint.MaxValue));
        var sent = Sent("api.example.com");
        var (decision, _) = AnswerDecider.Decide(Policy("api.example.com"), Forward(Policy("api.example.com"), "api.example.com"), sent,
            Answer(sent, A("api.example.com", "198.19.0.10", ttl: 86400)), LearnedAddresses.Empty, limits, T0);
        Assert.Equal(3600u, Assert.IsType<AnswerDecision.Release>(decision).MaxTtl);
    }

    [Fact]
    public void Allowed_extra_types_are_passed_on_and_never_learned_from()
    {
        var policy = Policy("api.example.com") with { ExtraTypes = [DnsTypes.HTTPS] };
        var sent = Sent("api.example.com", DnsTypes.HTTPS);
        var https = new DnsRecord("api.example.com", DnsTypes.HTTPS, DnsTypes.ClassIn, 60);
        var (decision, next) = AnswerDecider.Decide(policy, Forward(policy, "api.example.com", DnsTypes.HTTPS), sent,
            Answer(sent, https, A("api.example.com", "198.19.0.10")), LearnedAddresses.Empty, Limits, T0);
        var release = Assert.IsType<AnswerDecision.Release>(decision);
        Assert.Equal([0], release.Keep.ToArray());
        Assert.Null(release.Commit);
        Assert.Equal(0, next.Count(T0));
    }
}
