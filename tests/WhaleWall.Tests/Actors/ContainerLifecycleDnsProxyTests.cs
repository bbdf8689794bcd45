using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;
using WhaleWall.Firewall.Nft;
using Xunit;
using static WhaleWall.Actors.Containers.ContainerInputs;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;

namespace WhaleWall.Tests.Actors;

/// <summary>The DNS proxy's side of a container's lifecycle (issue 15): its <c>dnsproxy*</c>
/// elements, and learned addresses answered only once the writer applied them.</summary>
public class ContainerLifecycleDnsProxyTests
{
    private const string WildcardRule = "output:\n  - hosts: [\"*.cdn.example.test\"]\n    proto: tcp\n    dst_ports: [443]\n";
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly IActorRef Proxy = new FakeRef("proxy");
    private static readonly IActorRef Other = new FakeRef("other");

    private static LifecycleContext Context(bool proxy) =>
        new(DecisionContext.Default with { DnsProxy = proxy }, HasStore: false, HasHostnames: true);

    private static (ContainerLifecycle State, ImmutableArray<IContainerEvent> Events) Step(ContainerLifecycle s, object input,
        DateTimeOffset? at = null)
    {
        var events = s.Decide(input, at ?? T0);
        foreach (var e in events) s = s.Apply(e);
        return (s, events);
    }

    private static ContainerLifecycle Enforced(string rules, bool proxy = true)
    {
        var facts = Facts.Container("a", "198.18.128.2", rules);
        var (s, _) = Step(ContainerLifecycle.New(facts.Id, Context(proxy)), new ContainerCommands.Seed(facts));
        return Step(s, new NftWriterEvents.Applied(facts.Id, s.Kernel.Version)).State;
    }

    private static LearnRequested Learn(IActorRef replyTo, string name, string address, int seconds = 30) =>
        new(new ContainerCommands.LearnAddresses(new LearnedBatch(DnsName.Parse(name), [DnsName.Parse(name)],
            [new LearnedAddress(IPAddress.Parse(address), TimeSpan.FromSeconds(seconds))]), T0), replyTo);

    [Fact]
    public void A_proxied_container_gets_its_dnsproxy_element_and_a_drop_all_one_does_not()
    {
        var s = Enforced(WildcardRule);
        Assert.Contains(s.Kernel.Sent!.Elements, e => e.Set == DnsProxyLayout.Set4 && e.Key.EndsWith("198.18.128.2"));
        Assert.DoesNotContain(Enforced(WildcardRule, proxy: false).Kernel.Sent!.Elements, e => e.Set.StartsWith("dnsproxy"));
        var invalid = Enforced("output:\n  - hosts: [\"a*.example.test\"]\n");
        Assert.IsType<WhaleWall.Firewall.Policy.PolicyDecision.FailClosed>(invalid.Decision.Policy);
        Assert.DoesNotContain(invalid.Kernel.Sent!.Elements, e => e.Set.StartsWith("dnsproxy"));
    }

    [Fact]
    public void Wildcards_need_the_proxy()
    {
        Assert.IsType<WhaleWall.Firewall.Policy.PolicyDecision.FailClosed>(Enforced(WildcardRule, proxy: false).Decision.Policy);
        Assert.NotNull(Enforced(WildcardRule).Decision.Dns);
    }

    [Fact]
    public void Learned_addresses_are_answered_only_after_the_writer_applied_them()
    {
        var s = Enforced(WildcardRule);
        var (after, events) = Step(s, Learn(Proxy, "edge.cdn.example.test", "198.19.0.10"));
        var sent = Assert.Single(events.OfType<FragmentSent>());
        Assert.Contains(sent.Fragment.Elements, e => e.Set == "outh4" && e.Expires == T0.AddSeconds(30) && e.Key.Contains("198.19.0.10"));
        Assert.DoesNotContain(events, e => e is LearnAnswered);

        // an older version's answer releases nothing; a refusal fails the request
        (var refused, events) = Step(after, new NftWriterEvents.Rejected("a-id", sent.Version, "no"));
        Assert.Equal("the kernel refused: no", Assert.Single(events.OfType<LearnAnswered>()).Error);

        (_, events) = Step(after, new NftWriterEvents.Applied("a-id", sent.Version - 1));
        Assert.DoesNotContain(events, e => e is LearnAnswered);
        (after, events) = Step(after, new NftWriterEvents.Applied("a-id", sent.Version));
        var answered = Assert.Single(events.OfType<LearnAnswered>());
        Assert.Equal(Proxy, answered.ReplyTo);
        Assert.Null(answered.Error);
        Assert.Empty(after.LearnsWaiting);
        Assert.Empty(refused.LearnsWaiting);
    }

    [Fact]
    public void A_name_outside_the_rules_opens_nothing_and_fails_and_an_already_committed_renewal_is_answered_at_once()
    {
        var s = Enforced(WildcardRule);
        var (after, events) = Step(s, Learn(Proxy, "a.b.cdn.example.test", "198.19.0.11"));
        Assert.Empty(events.OfType<FragmentSent>());
        // nothing carries the address: the proxy must not release it (review)
        Assert.NotNull(Assert.Single(events.OfType<LearnAnswered>()).Error);

        (after, events) = Step(after, Learn(Proxy, "edge.cdn.example.test", "198.19.0.10"));
        after = Step(after, new NftWriterEvents.Applied("a-id", after.Kernel.Version)).State;
        (_, events) = Step(after, Learn(Other, "edge.cdn.example.test", "198.19.0.10"));
        Assert.Empty(events.OfType<FragmentSent>());
        Assert.Equal(Other, Assert.Single(events.OfType<LearnAnswered>()).ReplyTo);
    }

    [Fact]
    public void Without_the_proxy_a_learn_request_fails()
    {
        var (_, events) = Step(Enforced("output:\n  - hosts: [api.example.test]\n", proxy: false), Learn(Proxy, "api.example.test", "198.19.0.10"));
        Assert.NotNull(Assert.Single(events.OfType<LearnAnswered>()).Error);
    }

    private static LearnRequested LearnMany(IActorRef replyTo, string name, IEnumerable<string> addresses, DateTimeOffset at, int seconds = 300) =>
        new(new ContainerCommands.LearnAddresses(new LearnedBatch(DnsName.Parse(name), [DnsName.Parse(name)],
            [.. addresses.Select(a => new LearnedAddress(IPAddress.Parse(a), TimeSpan.FromSeconds(seconds)))]), at), replyTo);

    private static bool Carries(Fragment fragment, string address) =>
        fragment.Elements.Any(e => e.Set == "outh4" && e.Key.Contains(address + " "));

    /// <summary>Review: learned elements count toward the compiler's element limit, but the proxy's
    /// caps count addresses (32 per name, 1,024 per container), not addresses x ports. Learning
    /// within the proxy's caps made the whole container drop-all (its other rules and its
    /// dnsproxy element too, so no lookup could ever prune it) while the learn was answered as
    /// committed. Now the addresses that would not fit are refused, the learn is answered with
    /// an error, and the container keeps its policy and its proxy.</summary>
    [Fact]
    public void Learning_never_pushes_the_container_over_its_element_limit_and_only_what_is_carried_is_answered_committed()
    {
        var rule = "output:\n  - hosts: [\"**.example.test\"]\n    proto: tcp\n    dst_ports: [80, 443, 8080, 8443]\n" +
                   "  - ips: [198.19.5.5]\n    proto: tcp\n    dst_ports: [5432]\n";
        var s = Enforced(rule);
        var answers = new List<(string? Error, string[] Addresses)>();
        for (var n = 0; n < 32; n++)   // 32 names x 32 addresses: exactly the proxy's caps
        {
            var addresses = Enumerable.Range(0, 32).Select(i => $"10.{n}.{i}.1").ToArray();
            var (next, events) = Step(s, LearnMany(Proxy, $"n{n}.example.test", addresses, T0));
            s = next;
            if (s.Kernel.Confirmed < s.Kernel.Version)
            {
                (s, var applied) = Step(s, new NftWriterEvents.Applied("a-id", s.Kernel.Version));
                events = events.AddRange(applied);
            }
            var answer = Assert.Single(events.OfType<LearnAnswered>());
            answers.Add((answer.Error, addresses));
            Assert.Null(s.CompileError);
            Assert.Contains(s.Kernel.Sent!.Elements, e => e.Set == "out4");        // the unrelated rule stays
            Assert.Contains(s.Kernel.Sent.Elements, e => e.Set == DnsProxyLayout.Set4); // and so does its proxy
            Assert.True(s.Kernel.Sent.Elements.Count(e => e.Set == "outh4") <= WhaleWall.Firewall.Compile.Compiler.MaxElements);
        }
        foreach (var (error, addresses) in answers)
            if (error is null) Assert.All(addresses, a => Assert.True(Carries(s.Kernel.Sent!, a), $"{a} answered committed, not in the kernel"));
            else Assert.All(addresses, a => Assert.False(Carries(s.Kernel.Sent!, a)));
        Assert.Contains(answers, a => a.Error is null);
        Assert.Contains(answers, a => a.Error is not null);
    }

    /// <summary>A learn waits for the writer; if the wish it waits for no longer carries its
    /// addresses when applied (the container died meanwhile), it is not answered as committed.</summary>
    [Fact]
    public void A_learn_whose_addresses_a_newer_wish_no_longer_carries_is_answered_with_an_error()
    {
        var s = Enforced(WildcardRule);
        (s, _) = Step(s, Learn(Proxy, "edge.cdn.example.test", "198.19.0.10"));
        (s, _) = Step(s, new ContainerCommands.Refresh("die", new WhaleWall.Actors.Docker.DockerEvent("container", "die", "a-id", 0)));
        Assert.False(Carries(s.Kernel.Sent!, "198.19.0.10"));
        var (_, events) = Step(s, new NftWriterEvents.Applied("a-id", s.Kernel.Version));
        Assert.NotNull(Assert.Single(events.OfType<LearnAnswered>()).Error);
    }

    /// <summary>Review: an expired learned address stayed in the container's state until its next
    /// lookup; a die + start (restart policy) compiled it again, and the writer gave it a 1 s
    /// timeout. Learned addresses are pruned by time whenever the container compiles.</summary>
    [Fact]
    public void An_expired_learned_address_is_pruned_when_the_container_compiles_and_never_comes_back_with_a_restart()
    {
        var s = Enforced(WildcardRule);
        var facts = s.Facts!;
        (s, _) = Step(s, Learn(Proxy, "edge.cdn.example.test", "198.19.0.10", seconds: 35));
        s = Step(s, new NftWriterEvents.Applied("a-id", s.Kernel.Version)).State;
        Assert.True(Carries(s.Kernel.Sent!, "198.19.0.10"));

        // ten minutes later: die, then Docker says it runs again
        var later = T0.AddMinutes(10);
        var (dead, died) = Step(s, new ContainerCommands.Refresh("die", new WhaleWall.Actors.Docker.DockerEvent("container", "die", "a-id", 0)), later);
        Assert.Contains(died, e => e is AddressesLearned { Learned.IsEmpty: true });
        dead = Step(dead, new NftWriterEvents.Applied("a-id", dead.Kernel.Version), later).State;
        var (back, _) = Step(dead, new Inspected(facts, dead.Inspection.Started), later);
        Assert.True(back.Kernel.Sent!.Elements.Any(e => e.Set == DnsProxyLayout.Set4));
        Assert.DoesNotContain(back.Kernel.Sent.Elements, e => e.Set == "outh4");
        Assert.True(back.Learned.IsEmpty);
    }

    /// <summary>A lookup that only renews what the kernel already holds for at least as long (a
    /// caching resolver counts the TTL down: the same expiry again) compiles nothing and sends
    /// nothing: it is answered at once.</summary>
    [Fact]
    public void A_lookup_that_renews_nothing_is_answered_at_once_without_compiling()
    {
        var s = Enforced(WildcardRule);
        (s, _) = Step(s, Learn(Proxy, "edge.cdn.example.test", "198.19.0.10", seconds: 30));
        s = Step(s, new NftWriterEvents.Applied("a-id", s.Kernel.Version)).State;
        var again = Learn(Other, "edge.cdn.example.test", "198.19.0.10", seconds: 20);
        again = again with { Command = again.Command with { Now = T0.AddSeconds(10) } };
        var (_, events) = Step(s, again, T0.AddSeconds(10));
        Assert.Empty(events.OfType<AddressesLearned>());
        Assert.Empty(events.OfType<FragmentSent>());
        var answered = Assert.Single(events.OfType<LearnAnswered>());
        Assert.Equal(Other, answered.ReplyTo);
        Assert.Null(answered.Error);
    }

    private sealed class FakeRef(string name) : MinimalActorRef
    {
        public override ActorPath Path { get; } = new RootActorPath(new Address("akka", "test")) / name;
        public override IActorRefProvider Provider => throw new NotSupportedException();
    }
}
