using System.Collections.Immutable;
using System.Diagnostics;
using FsCheck.Fluent;
using System.Net;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Policy;
using WhaleWall.Tests.Actors;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.Actors.State.ContainerStoreCommands;
using Record = WhaleWall.Actors.State.ContainerStoreCommands.Record;
using static WhaleWall.Actors.State.ContainerStoreEvents;

namespace WhaleWall.Tests.State;

/// <summary>The store against a real database: recovery by stopping the actor and creating it
/// again with the same persistence id, snapshots, node isolation, and start-up from the
/// journal while Docker is unreachable. Run against SQLite (<see cref="SqliteContainerStoreSpecs"/>)
/// and PostgreSQL (<see cref="PostgresContainerStoreSpecs"/>).</summary>
public abstract class ContainerStoreSpecs : TestKit
{
    private readonly ITestOutputHelper output;
    private readonly string node = "node-" + Guid.NewGuid().ToString("N")[..8];

    protected ContainerStoreSpecs(StateOptions options, ITestOutputHelper output)
        : base(ConfigurationFactory.ParseString($"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}")
            .WithFallback(PersistenceConfig.Config(options)), output: output)
    {
        this.output = output;
    }

    private IActorRef Store(string? of = null) => Sys.ActorOf(ContainerStoreActor.Props(of ?? node));

    /// <summary>Waits until the store handled everything sent before (commands that persist
    /// stash what follows them).</summary>
    private void Sync(IActorRef store)
    {
        store.Tell(GetState.Instance);
        ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
    }

    private void StopAndWait(IActorRef actor)
    {
        Watch(actor);
        Sys.Stop(actor);
        ExpectTerminated(actor);
    }

    private ContainerStoreState StateOf(string? of = null)
    {
        var store = Store(of);
        store.Tell(GetState.Instance);
        var state = ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30)).State;
        StopAndWait(store);
        return state;
    }

    private void Remember(IActorRef store, ContainerFacts facts, long ticket = 1)
    {
        store.Tell(new Record(facts, [], ticket));
        ExpectMsg<Recorded>(r => r.Ticket == ticket, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Recorded_facts_survive_a_restart_of_the_store()
    {
        var a = StateSerializerTests.Rich();
        var b = Facts.Container("b", "198.18.128.3", "output: [oops\n");
        var store = Store();
        Remember(store, a, 1);
        store.Tell(new Record(b, ["whalewall.rules: (root) (line 1): bad yaml"], 2));
        ExpectMsg<Recorded>(TimeSpan.FromSeconds(30));
        store.Tell(new Checkpoint(1_700_000_000_000_000_123));
        Sync(store);
        StopAndWait(store);

        var state = StateOf();
        Assert.Equal([a.Id, b.Id], state.Containers.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.True(FactsComparer.Same(a, state.Containers[a.Id].Facts));
        Assert.Equal(["whalewall.rules: (root) (line 1): bad yaml"], state.Containers[b.Id].Errors.ToArray());
        Assert.Equal(1_700_000_000_000_000_123, state.LastEventNanos);

        store = Store();
        store.Tell(new Forget(a.Id));
        Sync(store);
        StopAndWait(store);
        Assert.Equal([b.Id], StateOf().Containers.Keys);
    }

    [Fact]
    public void Recovery_from_a_snapshot_gives_the_same_state_as_the_events()
    {
        var store = Store();
        var n = ContainerStoreActor.SnapshotEvery + 7;
        for (var i = 0; i < n; i++)
            store.Tell(new Record(Facts.Container($"c{i}", $"198.18.{130 + i / 250}.{i % 250 + 1}"), [], i + 1));
        ReceiveN(n, TimeSpan.FromSeconds(60));
        store.Tell(new Forget("c3-id"));
        Sync(store);
        StopAndWait(store);

        var state = StateOf();
        Assert.Equal(n - 1, state.Containers.Count);
        Assert.DoesNotContain("c3-id", state.Containers.Keys);
        Assert.Equal(IPAddress.Parse($"198.18.{130 + (n - 1) / 250}.{(n - 1) % 250 + 1}"), state.Containers[$"c{n - 1}-id"].Facts.Networks[0].IPv4);
    }

    [Fact]
    public void Nodes_sharing_a_database_recover_only_their_own_state()
    {
        var other = node + "-other";
        var mine = Store();
        var theirs = Store(other);
        Remember(mine, Facts.Container("mine", "198.18.128.2"));
        Remember(theirs, Facts.Container("theirs", "198.18.128.3"));
        StopAndWait(mine);
        StopAndWait(theirs);

        Assert.Equal(["mine-id"], StateOf().Containers.Keys);
        Assert.Equal(["theirs-id"], StateOf(other).Containers.Keys);
    }

    [Fact]
    public void Clear_forgets_everything_for_good()
    {
        var store = Store();
        Remember(store, Facts.Container("a", "198.18.128.2"));
        store.Tell(Clear.Instance);
        Assert.Equal(1, ExpectMsg<Cleared>(TimeSpan.FromSeconds(30)).ContainersForgotten);
        StopAndWait(store);
        Assert.Empty(StateOf().Containers);

        // and the store keeps working afterwards
        store = Store();
        Remember(store, Facts.Container("b", "198.18.128.3"));
        StopAndWait(store);
        Assert.Equal(["b-id"], StateOf().Containers.Keys);
    }

    [Fact]
    public void Start_up_rebuilds_the_table_from_the_journal_while_Docker_is_unreachable_then_reconciles()
    {
        var kept = Facts.Container("kept", "198.18.128.2", "output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    dst_ports: [80]\n");
        var gone = Facts.Container("gone", "198.18.128.3", "output: []\n");
        var store = Store();
        Remember(store, kept, 1);
        Remember(store, gone, 2);
        StopAndWait(store);

        var docker = new FakeDockerSource { ListFailure = new IOException("docker.sock: connection refused") };
        var nft = new FakeNftables();
        store = Store();
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t"));
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        var events = Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers, store: store));

        // one transaction with both recovered containers, Docker or not
        AwaitCondition(() => nft.Transactions.Count >= 1, TimeSpan.FromSeconds(30));
        var table = nft.Transactions.First();
        Assert.Contains("\"flush\"", table);
        Assert.Contains("198.18.128.2", table);
        Assert.Contains("198.18.128.3", table);
        Assert.Contains("198.19.0.10", table);

        // Docker comes back: "gone" is gone, "fresh" appeared, "kept" was relabelled
        var relabelled = kept with { Labels = kept.Labels.SetItem("whalewall.rules", "output:\n  - ips: [198.19.0.11]\n    proto: tcp\n    dst_ports: [80]\n") };
        var fresh = Facts.Container("fresh", "198.18.128.4", "output: []\n");
        docker.Containers[relabelled.Id] = relabelled;
        docker.Containers[fresh.Id] = fresh;
        docker.ListFailure = null;
        AwaitCondition(() => nft.Transactions.Skip(1).Any(t => t.Contains("198.18.128.4")) &&
                             nft.Transactions.Skip(1).Any(t => t.Contains("delete") && t.Contains("198.18.128.3")) &&
                             nft.Transactions.Skip(1).Any(t => t.Contains("198.19.0.11")), TimeSpan.FromSeconds(30));
        AwaitCondition(() => docker.StreamSinces.Count == 1, TimeSpan.FromSeconds(10));

        StopAndWait(events);
        StopAndWait(store);
        var state = StateOf();
        Assert.Equal([fresh.Id, kept.Id], state.Containers.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.True(FactsComparer.Same(relabelled, state.Containers[kept.Id].Facts));
    }

    /// <summary>The elements the transaction adds to one set, as JSON text.</summary>
    private static List<string> ElementsOf(string transaction, string set) =>
        [.. System.Text.Json.Nodes.JsonNode.Parse(transaction)!["nftables"]!.AsArray()
            .Select(c => c!["add"]?["element"])
            .Where(e => e?["name"]?.GetValue<string>() == set)
            .SelectMany(e => e!["elem"]!.AsArray().Select(x => x!.ToJsonString()))];

    [Fact]
    public void Deny_by_default_start_up_builds_the_whole_table_from_the_journal_while_Docker_is_unreachable()
    {
        var gateway = GatewayConfig.Parse("gw", "_dns_");
        var a = JournalV2FixtureSpecs.Dual;
        var b = a with { Id = "b-id", Name = "b", Networks = [a.Networks[0] with { IPv4 = IPAddress.Parse("198.18.130.3"), IPv6 = null, MacAddress = "02:42:c6:12:82:03" }] };
        var store = Store();
        Remember(store, a, 1);
        Remember(store, b, 2);
        store.Tell(new RecordNetworks(JournalV2FixtureSpecs.Networks));
        Sync(store);
        StopAndWait(store);

        var docker = new FakeDockerSource { ListFailure = new IOException("docker.sock: no such file") };
        var nft = new FakeNftables();
        var sw = Stopwatch.StartNew();
        store = Store();
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t"));
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers, gateway, store: store));

        // at once (not after the writer's 60 s start-up grace), without Docker
        AwaitCondition(() => !nft.Transactions.IsEmpty, TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(10));
        output.WriteLine($"journal -> start-up transaction in {sw.ElapsedMilliseconds} ms");
        var table = nft.Transactions.First();
        foreach (var set in new[] { "gw4", "out4_2", "in4", "out6_2" }) output.WriteLine($"{set}: {string.Join("\n  ", ElementsOf(table, set))}");
        // the gateway network's subnet: unknown sources on it send nothing
        Assert.Equal(["""{"prefix":{"addr":"198.18.130.0","len":24}}"""], ElementsOf(table, "gw4"));
        // neighbours: the whole /24 (and /64) both ways, not /32s
        const string subnet = """{"prefix":{"addr":"198.18.130.0","len":24}}""";
        Assert.Contains($$"""{"concat":["198.18.130.2",{{subnet}},{"range":[0,255]},{"range":[0,65535]},{"range":[0,65535]}]}""", ElementsOf(table, "out4_2")); // 198.18.130.2's shard
        Assert.Contains($$"""{"concat":[{{subnet}},"198.18.130.3",{"range":[0,255]},{"range":[0,65535]}]}""", ElementsOf(table, "in4"));
        Assert.Contains("""{"concat":["2001:db8:130::2",{"prefix":{"addr":"2001:db8:130::","len":64}},{"range":[0,255]},{"range":[0,65535]},{"range":[0,65535]}]}""", ElementsOf(table, "out6_2"));
        // _dns_: port 53 to the journalled resolvers, IPv4 and IPv6
        Assert.Contains("""{"concat":["198.18.130.2","198.19.0.53",17,53]}""", ElementsOf(table, "outx4"));
        Assert.Contains("""{"concat":["2001:db8:130::2","2001:db8:19::53",17,53]}""", ElementsOf(table, "outx6"));
    }

    [Fact]
    public void A_restart_with_nothing_changed_writes_nothing_to_the_journal()
    {
        // fully populated facts and the networks, recorded as the actors would
        var facts = FactsGen.Facts.Sample(5).Select((f, i) => f with { Id = $"c{i}-id" }).ToList();
        var networks = FactsGen.Network.Sample(3).ToImmutableArray();
        var store = Store();
        foreach (var (f, i) in facts.Select((f, i) => (f, i))) Remember(store, f, i + 1);
        store.Tell(new RecordNetworks(networks));
        store.Tell(new Checkpoint(1_700_000_000_000_000_000));
        Sync(store);
        StopAndWait(store);

        // replay, then the same facts again (equal copies, networks in another order)
        store = Store();
        store.Tell(GetState.Instance);
        var before = ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
        Assert.Equal(facts.Count, before.State.Containers.Count);
        foreach (var (f, i) in facts.Select((f, i) => (f, i)))
            Remember(store, f with { Labels = f.Labels.ToImmutableDictionary(), Networks = [.. f.Networks], DnsServers = [.. f.DnsServers] }, 100 + i);
        store.Tell(new RecordNetworks([.. networks.Reverse()]));
        store.Tell(new Checkpoint(1_700_000_000_000_000_000));
        store.Tell(GetState.Instance);
        var after = ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
        Assert.Equal(before.SequenceNr, after.SequenceNr);
    }

    [Fact]
    public void A_restart_of_the_actors_with_Docker_unchanged_writes_nothing_to_the_journal()
    {
        var gateway = GatewayConfig.Parse("", "_dns_");
        var docker = new FakeDockerSource();
        foreach (var f in FactsGen.Facts.Sample(6).Select((f, i) => f with { Id = $"c{i}-id", Running = true }))
            docker.Containers[f.Id] = f;
        foreach (var n in JournalV2FixtureSpecs.Networks) docker.Networks.Add(n);

        long Run()
        {
            var store = Store();
            var nft = new FakeNftables();
            var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t"));
            var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
            var events = Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers, gateway, store: store));
            AwaitCondition(() => docker.StreamSinces.Count > 0 && !nft.Transactions.IsEmpty, TimeSpan.FromSeconds(30));
            Thread.Sleep(1500); // the reconcile's inspections, records and a checkpoint tick
            store.Tell(GetState.Instance);
            var snapshot = ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
            Assert.Equal(docker.Containers.Keys.Order(), snapshot.State.Containers.Keys.Order());
            foreach (var actor in new[] { events, writer, peers, store }) StopAndWait(actor);
            while (docker.StreamSinces.TryDequeue(out _)) { }
            return snapshot.SequenceNr;
        }

        var first = Run();
        Assert.True(first >= docker.Containers.Count + 1, $"first run wrote {first} events");
        Assert.Equal(first, Run());
        Assert.Equal(first, Run());
    }

    [Fact]
    public void Replay_of_1000_containers_to_the_start_up_transaction()
    {
        const int n = 1000;
        var store = Store();
        for (var i = 0; i < n; i++)
            store.Tell(new Record(Facts.Container($"c{i}", $"198.18.{130 + i / 250}.{i % 250 + 1}",
                "output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    dst_ports: [80, 443]\n"), [], i + 1));
        ReceiveN(n, TimeSpan.FromSeconds(120));
        StopAndWait(store);

        var sw = Stopwatch.StartNew();
        var recovered = StateOf();
        var recovery = sw.Elapsed;
        Assert.Equal(n, recovered.Containers.Count);

        var nft = new FakeNftables();
        var docker = new FakeDockerSource { ListFailure = new IOException("unreachable") };
        sw.Restart();
        store = Store();
        var writer = Sys.ActorOf(NftWriterActor.Props(nft, "t"));
        var peers = Sys.ActorOf(Props.Create<PeerDirectoryActor>());
        Sys.ActorOf(DockerEventsActor.Props(docker, writer, peers, store: store));
        AwaitCondition(() => !nft.Transactions.IsEmpty, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(5));
        var toTable = sw.Elapsed;
        Assert.Contains($"198.18.133.250", nft.Transactions.First());
        var line = $"[replay] {GetType().Name}: {n} containers: store recovery {recovery.TotalMilliseconds:F0} ms; journal -> start-up transaction (fake kernel) {toTable.TotalMilliseconds:F0} ms";
        output.WriteLine(line);
        Console.WriteLine(line);
    }
}

public sealed class SqliteContainerStoreSpecs(ITestOutputHelper output)
    : ContainerStoreSpecs(new StateOptions("sqlite", Path.Combine(Path.GetTempPath(), "ww-state-" + Guid.NewGuid().ToString("N")[..8]), "unused"), output);

/// <summary>A PostgreSQL server of the tests' own for the whole class.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public WhaleWall.TestSupport.PostgresServer Server { get; } = new();

    public Task InitializeAsync() => Server.StartAsync();

    public Task DisposeAsync() => Server.DisposeAsync().AsTask();
}

public sealed class PostgresContainerStoreSpecs(PostgresFixture pg, ITestOutputHelper output)
    : ContainerStoreSpecs(new StateOptions(pg.Server.ConnectionString, Path.GetTempPath(), "unused"), output), IClassFixture<PostgresFixture>;
