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

/// <summary>A journal written by this version (a real SQLite file under
/// <c>fixtures/journal-v1</c>, checked in) must replay in every later version: a snapshot
/// (<c>containers-snapshot.v1</c>, the events before it deleted as the store does) and events
/// after it. <c>WHALEWALL_WRITE_FIXTURES=1</c> writes the file again — only do that for a new
/// fixture folder, never to make an old one pass.</summary>
public sealed class JournalFixtureSpecs : TestKit
{
    public const string Node = "fixture";
    private static readonly string Dir = Path.Combine(Path.GetTempPath(), "ww-fixture-" + Guid.NewGuid().ToString("N")[..8]);

    public JournalFixtureSpecs(ITestOutputHelper output)
        : base(PersistenceConfig.Config(new StateOptions("sqlite", Prepare(), Node)), output: output) { }

    private static string Prepare()
    {
        Directory.CreateDirectory(Dir);
        if (Environment.GetEnvironmentVariable("WHALEWALL_WRITE_FIXTURES") != "1")
            File.Copy(Path.Combine(AppContext.BaseDirectory, "fixtures", "journal-v1", "whalewall.db"), Path.Combine(Dir, "whalewall.db"));
        return Dir;
    }

    public static ContainerFacts Web => StateSerializerTests.Rich();

    public static ContainerFacts Broken => new("broken-id", "broken", true,
        ImmutableDictionary<string, string>.Empty.Add("whalewall.enabled", "true").Add("whalewall.rules", "output: [oops"),
        [new NetworkAttachment("bridge", "bridge-id", IPAddress.Parse("198.18.128.3"), null)], []);

    public static ContainerFacts Late => new("late-id", "late", false,
        ImmutableDictionary<string, string>.Empty.Add("whalewall.enabled", "true"),
        [new NetworkAttachment("bridge", "bridge-id", null, IPAddress.Parse("2001:db8:128::4"))], []);

    public const long LastCheckpoint = 1_763_900_000_123_456_789;

    [Fact]
    public void The_v1_journal_fixture_replays_to_the_state_that_wrote_it()
    {
        if (Environment.GetEnvironmentVariable("WHALEWALL_WRITE_FIXTURES") == "1") Write();

        var store = Sys.ActorOf(ContainerStoreActor.Props(Node));
        store.Tell(GetState.Instance);
        var snapshot = ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
        var s = snapshot.State;
        Assert.Equal([Web.Id, "broken-id", "late-id"], s.Containers.Keys.Order(StringComparer.Ordinal));
        Assert.True(FactsComparer.Same(Web, s.Containers[Web.Id].Facts));
        Assert.True(FactsComparer.Same(Broken, s.Containers["broken-id"].Facts));
        Assert.True(FactsComparer.Same(Late, s.Containers["late-id"].Facts));
        Assert.Equal(["whalewall.rules: (root) (line 1): bad yaml"], s.Containers["broken-id"].Errors.ToArray());
        Assert.Equal(LastCheckpoint, s.LastEventNanos);
        Assert.True(snapshot.SequenceNr > ContainerStoreActor.SnapshotEvery, $"sequence nr {snapshot.SequenceNr}: the fixture should hold a snapshot and events after it");
    }

    /// <summary>Writes the fixture (run once per fixture folder).</summary>
    private void Write()
    {
        var store = Sys.ActorOf(ContainerStoreActor.Props(Node));
        store.Tell(new Record(Web, [], 1));
        store.Tell(new Record(Broken, ["whalewall.rules: (root) (line 1): bad yaml"], 2));
        store.Tell(new Record(Facts.Container("gone", "198.18.128.9"), [], 3));
        ReceiveN(3, TimeSpan.FromSeconds(30));
        store.Tell(new Forget("gone-id"));
        for (var i = 1; i <= ContainerStoreActor.SnapshotEvery; i++)
            store.Tell(new Checkpoint(LastCheckpoint - 1000 + i));
        store.Tell(new Record(Late, [], 4));
        ExpectMsg<Recorded>(TimeSpan.FromSeconds(60));
        store.Tell(new Checkpoint(LastCheckpoint));
        store.Tell(GetState.Instance);
        ExpectMsg<Snapshot>(TimeSpan.FromSeconds(30));
        Thread.Sleep(2000); // the snapshot is saved and the events before it deleted
        Watch(store);
        Sys.Stop(store);
        ExpectTerminated(store);
        var target = Path.Combine(SourceDir(), "..", "fixtures", "journal-v1");
        Directory.CreateDirectory(target);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        File.Copy(Path.Combine(Dir, "whalewall.db"), Path.Combine(target, "whalewall.db"), overwrite: true);
    }

    private static string SourceDir([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
