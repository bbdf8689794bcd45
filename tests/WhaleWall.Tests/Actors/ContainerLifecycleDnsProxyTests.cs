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

    private static (ContainerLifecycle State, ImmutableArray<IContainerEvent> Events) Step(ContainerLifecycle s, object input)
    {
        var events = s.Decide(input);
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
    public void A_name_outside_the_rules_opens_nothing_and_an_already_committed_renewal_is_answered_at_once()
    {
        var s = Enforced(WildcardRule);
        var (after, events) = Step(s, Learn(Proxy, "a.b.cdn.example.test", "198.19.0.11"));
        Assert.Empty(events.OfType<FragmentSent>());
        Assert.Null(Assert.Single(events.OfType<LearnAnswered>()).Error);

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

    private sealed class FakeRef(string name) : MinimalActorRef
    {
        public override ActorPath Path { get; } = new RootActorPath(new Address("akka", "test")) / name;
        public override IActorRefProvider Provider => throw new NotSupportedException();
    }
}
