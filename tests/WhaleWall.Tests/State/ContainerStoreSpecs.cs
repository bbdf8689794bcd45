using System.Diagnostics;
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
