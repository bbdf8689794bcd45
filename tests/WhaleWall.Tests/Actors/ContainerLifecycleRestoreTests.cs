using System.Collections.Immutable;
using System.Net;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;
using Xunit;
using static WhaleWall.Actors.Containers.ContainerInputs;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;

namespace WhaleWall.Tests.Actors;

/// <summary>Learned addresses restored at start-up (docs/dns-proxy.md "Restart") are in the
/// container's first wish (so the start-up transaction carries them), with their own expiry,
/// and only where the container's current policy allows them.</summary>
public class ContainerLifecycleRestoreTests
{
    private const string WildcardRule = "output:\n  - hosts: [\"*.cdn.example.test\"]\n    proto: tcp\n    dst_ports: [443]\n";
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> Restored(string host, string address, int seconds) =>
        LearnedMap.Empty.SetItem(host, ImmutableDictionary<IPAddress, DateTimeOffset>.Empty.SetItem(IPAddress.Parse(address), T0.AddSeconds(seconds)));

    private static (ContainerLifecycle State, ImmutableArray<IContainerEvent> Events) Seeded(string rules, bool proxy,
        ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> restored)
    {
        var facts = Facts.Container("a", "198.18.128.2", rules);
        var s = ContainerLifecycle.New(facts.Id, new LifecycleContext(DecisionContext.Default with { DnsProxy = proxy }, HasStore: true, HasHostnames: true))
            .Restore(restored);
        var events = s.Decide(new ContainerCommands.Seed(facts), T0);
        foreach (var e in events) s = s.Apply(e);
        return (s, events);
    }

    [Fact]
    public void A_restored_address_is_in_the_first_wish_with_its_own_expiry()
    {
        var (_, events) = Seeded(WildcardRule, proxy: true, Restored("*.cdn.example.test", "198.19.0.10", 25));
        var first = Assert.Single(events.OfType<FragmentSent>());
        var element = Assert.Single(first.Fragment.Elements, e => e.Set == "outh4");
        Assert.Contains("198.18.128.2 . 198.19.0.10", element.Key);
        Assert.Equal(T0.AddSeconds(25), element.Expires);
    }

    [Fact]
    public void A_restored_name_the_rules_no_longer_hold_opens_nothing()
    {
        var (_, events) = Seeded(WildcardRule, proxy: true, Restored("*.other.example.test", "198.19.0.10", 25));
        Assert.DoesNotContain(Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements, e => e.Key.Contains("198.19.0.10"));
    }

    [Fact]
    public void Without_the_proxy_restored_addresses_open_nothing()
    {
        var rule = "output:\n  - hosts: [api.example.test]\n    proto: tcp\n    dst_ports: [443]\n";
        var (_, events) = Seeded(rule, proxy: false, Restored("api.example.test", "198.19.0.10", 25));
        Assert.DoesNotContain(Assert.Single(events.OfType<FragmentSent>()).Fragment.Elements, e => e.Key.Contains("198.19.0.10"));
    }

    [Fact]
    public void Restored_addresses_stay_beside_newly_learned_ones_until_they_expire()
    {
        var (s, events) = Seeded(WildcardRule, proxy: true, Restored("*.cdn.example.test", "198.19.0.10", 25));
        s = s.Apply(new KernelConfirmed(s.Kernel.Version, 0));
        var learn = new LearnRequested(new ContainerCommands.LearnAddresses(new LearnedBatch(DnsName.Parse("b.cdn.example.test"),
            [DnsName.Parse("b.cdn.example.test")], [new LearnedAddress(IPAddress.Parse("198.19.0.11"), TimeSpan.FromSeconds(30))]), T0.AddSeconds(5)), Akka.Actor.ActorRefs.Nobody);
        events = s.Decide(learn, learn.Command.Now);
        var learned = Assert.Single(events.OfType<AddressesLearned>()).Learned["*.cdn.example.test"];
        Assert.Equal(T0.AddSeconds(25), learned[IPAddress.Parse("198.19.0.10")]);
        Assert.Equal(T0.AddSeconds(35), learned[IPAddress.Parse("198.19.0.11")]);

        // once expired, the next lookup leaves it out
        learn = learn with { Command = learn.Command with { Now = T0.AddSeconds(26) } };
        learned = s.Decide(learn, learn.Command.Now).OfType<AddressesLearned>().Last().Learned["*.cdn.example.test"];
        Assert.False(learned.ContainsKey(IPAddress.Parse("198.19.0.10")));
    }
}
