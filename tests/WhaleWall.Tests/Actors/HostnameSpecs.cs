using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Hostnames;
using Xunit;
using static WhaleWall.Actors.Hostnames.HostnamesEvents;

namespace WhaleWall.Tests.Actors;

/// <summary>A DNS that answers what the test says, counting questions.</summary>
public sealed class FakeDns : IDnsResolver
{
    public ConcurrentDictionary<string, DnsAnswer> Answers { get; } = new();
    public ConcurrentDictionary<string, int> Queries { get; } = new();

    public void Set(string name, int ttlSeconds, params string[] addresses) =>
        Answers[name] = new DnsAnswer([.. addresses.Select(a => (IPAddress.Parse(a), TimeSpan.FromSeconds(ttlSeconds)))], null);

    public Task<DnsAnswer> ResolveAsync(string name, CancellationToken ct)
    {
        Queries.AddOrUpdate(name, 1, (_, n) => n + 1);
        return Task.FromResult(Answers.TryGetValue(name, out var a) ? a : DnsAnswer.Failed("NXDOMAIN"));
    }
}

public class HostnameResolverSpecs() : TestKit("akka.scheduler.implementation = \"Akka.TestKit.TestScheduler, Akka.TestKit\"")
{
    private static readonly DnsSettings Settings = new(TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), TimeSpan.FromSeconds(30));
    private readonly FakeDns dns = new();
    private TestScheduler Clock => (TestScheduler)Sys.Scheduler;

    private IActorRef Resolver(string name)
    {
        var resolver = Sys.ActorOf(HostnameResolverActor.Props(name, dns, Settings));
        resolver.Tell(new HostnameResolverActor.AddSubscriber(TestActor));
        return resolver;
    }

    private AddressesChanged NextWithAddresses() =>
        FishForMessage<AddressesChanged>(m => !m.Host.Addresses.IsEmpty, TimeSpan.FromSeconds(3));

    [Fact]
    public void Addresses_are_trusted_for_their_ttl_clamped_plus_grace()
    {
        dns.Set("api.test.example", 1, "198.19.0.10");
        var start = Clock.Now;
        Resolver("api.test.example");
        var (address, expires) = Assert.Single(NextWithAddresses().Host.Addresses);
        Assert.Equal(IPAddress.Parse("198.19.0.10"), address);
        Assert.Equal(start + TimeSpan.FromSeconds(5) + Settings.Grace, expires); // TTL 1 s clamped to 5 s
    }

    [Fact]
    public void Name_is_asked_again_at_half_its_ttl_and_a_moved_name_is_followed()
    {
        dns.Set("api.test.example", 60, "198.19.0.10");
        Resolver("api.test.example");
        NextWithAddresses();
        Assert.Equal(1, dns.Queries["api.test.example"]);

        dns.Set("api.test.example", 60, "198.19.0.11");
        Clock.Advance(TimeSpan.FromSeconds(29));
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Clock.Advance(TimeSpan.FromSeconds(1));
        var moved = NextWithAddresses().Host.Addresses;
        Assert.Equal(2, dns.Queries["api.test.example"]);
        // the new address is trusted; the old one keeps its old expiry and fades out
        Assert.Contains(moved, a => a.Address.Equals(IPAddress.Parse("198.19.0.11")));
        var old = Assert.Single(moved, a => a.Address.Equals(IPAddress.Parse("198.19.0.10")));
        Clock.Advance(old.Expires - Clock.Now);
        var after = FishForMessage<AddressesChanged>(m => m.Host.Addresses.Length == 1, TimeSpan.FromSeconds(3));
        Assert.Equal(IPAddress.Parse("198.19.0.11"), after.Host.Addresses.Single().Address);
    }

    [Fact]
    public void During_a_dns_outage_the_last_addresses_stay_until_their_grace_ends()
    {
        dns.Set("api.test.example", 10, "198.19.0.10");
        Resolver("api.test.example");
        var expires = NextWithAddresses().Host.Addresses.Single().Expires;
        dns.Answers["api.test.example"] = DnsAnswer.Failed("SERVFAIL");

        Clock.Advance(TimeSpan.FromSeconds(20)); // several failed refreshes, still within TTL + grace
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.True(dns.Queries["api.test.example"] >= 2);

        Clock.Advance(expires - Clock.Now);
        FishForMessage<AddressesChanged>(m => m.Host.Addresses.IsEmpty, TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void Addresses_per_name_are_capped()
    {
        dns.Set("many.test.example", 60, [.. Enumerable.Range(1, 40).Select(i => $"198.19.1.{i}")]);
        Resolver("many.test.example");
        Assert.Equal(Settings.MaxAddresses, NextWithAddresses().Host.Addresses.Length);
    }
}

public class HostnamesActorSpecs : TestKit
{
    [Fact]
    public void A_name_shared_by_two_containers_is_resolved_once_and_dropped_when_nobody_needs_it()
    {
        var dns = new FakeDns();
        dns.Set("api.test.example", 3600, "198.19.0.10");
        var hostnames = Sys.ActorOf(HostnamesActor.Props(dns, DnsSettings.Default));
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        hostnames.Tell(new HostnamesCommands.Subscribe(["api.test.example"]), a);
        hostnames.Tell(new HostnamesCommands.Subscribe(["api.test.example"]), b);
        a.FishForMessage<AddressesChanged>(m => !m.Host.Addresses.IsEmpty);
        b.FishForMessage<AddressesChanged>(m => !m.Host.Addresses.IsEmpty);
        Assert.Equal(1, dns.Queries["api.test.example"]);

        var resolver = Sys.ActorSelection("/user/*/dns-*").ResolveOne(TimeSpan.FromSeconds(1)).Result;
        Watch(resolver);
        hostnames.Tell(new HostnamesCommands.Subscribe([]), a);
        ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // b still needs it
        hostnames.Tell(new HostnamesCommands.Subscribe([]), b);
        ExpectTerminated(resolver);
    }
}
