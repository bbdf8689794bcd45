using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Dns;
using Xunit;
using static WhaleWall.Actors.Nft.NftWriterCommands;

namespace WhaleWall.Tests.Actors;

/// <summary>A daemon restart keeps what the DNS proxy learned (docs/dns-proxy.md "Restart"): the
/// container actor seeded with it programs it in its first wish and tells the proxy, learning
/// more reaches <c>learned.json</c>, and the file follows the containers.</summary>
public class LearnedRestoreSpecs : TestKit, IDisposable
{
    private const string WildcardRule = "output:\n  - hosts: [\"*.cdn.example.test\"]\n    proto: tcp\n    dst_ports: [443]\n";
    private const string Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private readonly string dir = Directory.CreateTempSubdirectory("ww-learned-").FullName;

    void IDisposable.Dispose()
    {
        Directory.Delete(dir, recursive: true);
        base.Dispose();
    }

    private static ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> Learned(string address, DateTimeOffset until) =>
        LearnedMap.Empty.SetItem("*.cdn.example.test", ImmutableDictionary<IPAddress, DateTimeOffset>.Empty.SetItem(IPAddress.Parse(address), until));

    [Fact]
    public void A_seeded_container_programs_its_restored_addresses_at_once_and_tells_the_proxy()
    {
        var facts = Facts.Container("a", "198.18.128.2", WildcardRule) with { Id = Id };
        var until = DateTimeOffset.UtcNow.AddSeconds(30);
        var proxy = new RecordingProxy();
        var writer = CreateTestProbe();
        var store = CreateTestProbe();
        var services = new ContainerServices(null, BindingSettings.Off)
        {
            Dns = proxy,
            LearnedStore = store,
            Restored = new Dictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>>
            {
                [Id] = Learned("198.19.0.10", until),
                ["another"] = Learned("198.19.0.99", until),
            },
        };
        var actor = Sys.ActorOf(ContainerActor.Props(Id, new FakeDockerSource(), writer, Sys.ActorOf(Props.Create<PeerDirectoryActor>()), services: services));
        actor.Tell(new ContainerCommands.Seed(facts));

        var first = writer.ExpectMsg<Program>();
        var element = Assert.Single(first.Fragment.Elements, e => e.Set == "outh4");
        Assert.Contains("198.19.0.10", element.Key);
        Assert.Equal(until, element.Expires);
        Assert.DoesNotContain(first.Fragment.Elements, e => e.Key.Contains("198.19.0.99"));
        Assert.Equal([IPAddress.Parse("198.19.0.10")], proxy.Restored[Id]);
        Assert.False(proxy.Restored.ContainsKey("another"));
    }

    [Fact]
    public void The_store_writes_what_containers_learned_at_most_once_a_second_and_when_it_stops()
    {
        var file = new LearnedFile(Path.Combine(dir, LearnedFile.FileName));
        var other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        var restored = new Dictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>>
        {
            [other] = Learned("198.19.0.20", DateTimeOffset.UtcNow.AddSeconds(60)),
        };
        var store = Sys.ActorOf(LearnedStoreActor.Props(file, restored));
        store.Tell(new LearnedStoreCommands.Record(Id, Learned("198.19.0.10", DateTimeOffset.UtcNow.AddSeconds(60))));
        AwaitAssert(() =>
        {
            var read = file.Read(DateTimeOffset.UtcNow, TimeSpan.FromHours(2), 1024);
            Assert.Empty(read.Problems);
            Assert.Equal([Id, other], read.Containers.Keys.Order());
        }, TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100));

        // a container that is gone leaves the file; the last change is written when the store stops
        store.Tell(new LearnedStoreCommands.Record(other, LearnedMap.Empty));
        Watch(store);
        store.Tell(PoisonPill.Instance); // after the Record (Sys.Stop is a system message and may overtake it)
        ExpectTerminated(store);
        Assert.Equal([Id], file.Read(DateTimeOffset.UtcNow, TimeSpan.FromHours(2), 1024).Containers.Keys);
    }

    [Fact]
    public void A_corrupt_file_is_ignored_and_said()
    {
        var path = Path.Combine(dir, LearnedFile.FileName);
        File.WriteAllText(path, "{\"version\":1,\"containers\":{\"" + Id + "\":");
        var read = new LearnedFile(path).Read(DateTimeOffset.UtcNow, TimeSpan.FromHours(2), 1024);
        Assert.Empty(read.Containers);
        Assert.Contains("not JSON", Assert.Single(read.Problems));
        Assert.Empty(new LearnedFile(Path.Combine(dir, "absent.json")).Read(DateTimeOffset.UtcNow, TimeSpan.FromHours(2), 1024).Problems);
    }

    private sealed class RecordingProxy : IDnsProxyClients
    {
        public readonly System.Collections.Concurrent.ConcurrentDictionary<string, IPAddress[]> Restored = new();

        public void Register(string containerId, IPAddress address, DnsPolicy policy, ImmutableArray<IPAddress> resolvers) { }

        public void Unregister(string containerId, IPAddress address) { }

        public void Forget(string containerId) { }

        public void Restore(string containerId, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> learned) =>
            Restored[containerId] = [.. learned.Values.SelectMany(a => a.Keys)];
    }
}
