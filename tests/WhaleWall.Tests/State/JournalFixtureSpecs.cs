using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Policy;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.Actors.State.ContainerStoreCommands;
using static WhaleWall.Actors.State.ContainerStoreEvents;
using Record = WhaleWall.Actors.State.ContainerStoreCommands.Record;

namespace WhaleWall.Tests.State;

/// <summary>A journal written by a version (a real SQLite file under <c>fixtures/journal-vN</c>,
/// checked in) must replay in every later version: a snapshot (the events before it deleted as
/// the store does) and events after it. <c>WHALEWALL_WRITE_FIXTURES=journal-v2</c> writes the v2
/// file again (run <c>dotnet test --filter JournalV2FixtureSpecs</c> with it) — only do that for a
/// new fixture folder, never to make an old one pass. v1 was written by commit eba64d6 and can no
/// longer be written (this version writes v2).</summary>
public abstract class JournalFixtureSpecs(string folder, ITestOutputHelper output)
    : TestKit(PersistenceConfig.Config(new StateOptions("sqlite", Prepare(folder), Node)), output: output)
{
    public const string Node = "fixture";
    public const long LastCheckpoint = 1_763_900_000_123_456_789;
    protected string Folder { get; } = folder;

    private static readonly Dictionary<string, string> Dirs = new();

    protected static bool Writing(string folder) => Environment.GetEnvironmentVariable("WHALEWALL_WRITE_FIXTURES") == folder;

    protected static string DirOf(string folder)
    {
        lock (Dirs)
            return Dirs.TryGetValue(folder, out var d) ? d : Dirs[folder] = Path.Combine(Path.GetTempPath(), $"ww-{folder}-{Guid.NewGuid():N}"[..24]);
    }

    private static string Prepare(string folder)
    {
        var dir = DirOf(folder);
        Directory.CreateDirectory(dir);
        if (!Writing(folder))
            File.Copy(Path.Combine(AppContext.BaseDirectory, "fixtures", folder, "whalewall.db"), Path.Combine(dir, "whalewall.db"), overwrite: true);
        return dir;
    }

    public static ContainerFacts Broken => new("broken-id", "broken", true,
        ImmutableDictionary<string, string>.Empty.Add("whalewall.enabled", "true").Add("whalewall.rules", "output: [oops"),
        [new NetworkAttachment("bridge", "bridge-id", IPAddress.Parse("198.18.128.3"), null)], []);

    public static ContainerFacts Late => new("late-id", "late", false,
        ImmutableDictionary<string, string>.Empty.Add("whalewall.enabled", "true"),
        [new NetworkAttachment("bridge", "bridge-id", null, IPAddress.Parse("2001:db8:128::4"))], []);

    protected ContainerStoreEvents.Snapshot Replay()
    {
        var store = Sys.ActorOf(ContainerStoreActor.Props(Node));
        store.Tell(GetState.Instance);
        var snapshot = ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
        Assert.True(snapshot.SequenceNr > ContainerStoreActor.SnapshotEvery, $"sequence nr {snapshot.SequenceNr}: the fixture should hold a snapshot and events after it");
        Assert.Equal(LastCheckpoint, snapshot.State.LastEventNanos);
        Assert.Equal(["whalewall.rules: (root) (line 1): bad yaml"], snapshot.State.Containers["broken-id"].Errors.ToArray());
        return snapshot;
    }

    protected static void AssertFacts(ContainerFacts expected, ContainerStoreState s) =>
        Assert.True(Structural.Equal(expected, s.Containers[expected.Id].Facts), Structural.Difference(expected, s.Containers[expected.Id].Facts, expected.Id));
}

public sealed class JournalV1FixtureSpecs(ITestOutputHelper output) : JournalFixtureSpecs("journal-v1", output)
{
    [Fact]
    public void The_v1_journal_fixture_replays_to_the_state_that_wrote_it()
    {
        var s = Replay().State;
        Assert.Equal(["0123456789abcdef", "broken-id", "late-id"], s.Containers.Keys.Order(StringComparer.Ordinal));
        AssertFacts(StateSerializerTests.RichV1(), s);
        AssertFacts(Broken, s);
        AssertFacts(Late, s);
        Assert.Empty(s.Networks);
    }
}

public sealed class JournalV2FixtureSpecs(ITestOutputHelper output) : JournalFixtureSpecs("journal-v2", output)
{
    /// <summary>Fully populated facts of both families, and the gateway networks.</summary>
    public static ContainerFacts Dual => new("dual-id", "dual", true,
        ImmutableDictionary<string, string>.Empty.Add("dockerwall.outbound", "_dns_"),
        [new NetworkAttachment("gw", "gw-id", IPAddress.Parse("198.18.130.2"), IPAddress.Parse("2001:db8:130::2"), 24, 64, "bridge", "02:42:c6:12:82:02")],
        [], [IPAddress.Parse("198.19.0.53"), IPAddress.Parse("2001:db8:19::53")], "busybox", "gw");

    public static ImmutableArray<DockerNetwork> Networks =>
    [
        StateSerializerTests.GatewayNetwork(),
        new("bridge", "bridge-id", "bridge", [Firewall.Compile.Compiler.Subnet(AddressRange.Single(IPAddress.Parse("198.18.100.0")), 24)]),
    ];

    [Fact]
    public void The_v2_journal_fixture_replays_to_the_state_that_wrote_it()
    {
        if (Writing(Folder)) Write();

        var s = Replay().State;
        Assert.Equal(["0123456789abcdef", "broken-id", "dual-id", "late-id"], s.Containers.Keys.Order(StringComparer.Ordinal));
        AssertFacts(StateSerializerTests.Rich(), s);
        AssertFacts(Broken, s);
        AssertFacts(Late, s);
        AssertFacts(Dual, s);
        Assert.True(Structural.Equal(Networks.OrderBy(n => n.Id, StringComparer.Ordinal).ToArray(), s.Networks.ToArray()));
    }

    /// <summary>Writes the fixture (run once per fixture folder).</summary>
    private void Write()
    {
        var store = Sys.ActorOf(ContainerStoreActor.Props(Node));
        store.Tell(new Record(StateSerializerTests.Rich(), [], 1));
        store.Tell(new Record(Broken, ["whalewall.rules: (root) (line 1): bad yaml"], 2));
        store.Tell(new Record(Facts.Container("gone", "198.18.128.9"), [], 3));
        store.Tell(new RecordNetworks([StateSerializerTests.GatewayNetwork()])); // in the snapshot
        ReceiveN(3, TimeSpan.FromSeconds(30));
        store.Tell(new Forget("gone-id"));
        for (var i = 1; i <= ContainerStoreActor.SnapshotEvery; i++)
            store.Tell(new Checkpoint(LastCheckpoint - 1000 + i));
        store.Tell(new Record(Late, [], 4));
        store.Tell(new Record(Dual, [], 5));
        store.Tell(new RecordNetworks(Networks)); // an event after it
        ReceiveN(2, TimeSpan.FromSeconds(60));
        store.Tell(new Checkpoint(LastCheckpoint));
        store.Tell(GetState.Instance);
        ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
        Thread.Sleep(2000); // the snapshot is saved and the events before it deleted
        Watch(store);
        Sys.Stop(store);
        ExpectTerminated(store);
        var target = Path.Combine(SourceDir(), "..", "fixtures", Folder);
        Directory.CreateDirectory(target);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        File.Copy(Path.Combine(DirOf(Folder), "whalewall.db"), Path.Combine(target, "whalewall.db"), overwrite: true);
    }

    private static string SourceDir([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
