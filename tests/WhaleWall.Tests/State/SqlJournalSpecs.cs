using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Akka.TestKit.Xunit2;
using WhaleWall.Actors.State;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.Actors.State.StoredEvents;

namespace WhaleWall.Tests.State;

/// <summary>WhaleWall's journal and snapshot store (<c>WhaleWall.Actors.State.Sql</c>) through
/// Akka.Persistence's own protocol, against a real SQLite file
/// (<see cref="SqliteSqlJournalSpecs"/>) and a real PostgreSQL server
/// (<see cref="PostgresSqlJournalSpecs"/>): what a persistent actor relies on, including the
/// edges (a write that cannot be serialized, deleting everything, snapshot criteria).</summary>
public abstract class SqlJournalSpecs(StateOptions options, ITestOutputHelper output)
    : TestKit(PersistenceConfig.Config(options), output: output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private readonly string pid = "spec-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>A type bound to WhaleWall's serializer that it does not know: serializing throws.</summary>
    private sealed record Unknown : IStoredEvent;

    private IActorRef Journal => Persistence.Instance.Apply(Sys).JournalFor(null);
    private IActorRef Snapshots => Persistence.Instance.Apply(Sys).SnapshotStoreFor(null);

    protected static Persistent Event(string pid, long seq, object payload) =>
        new(payload, seq, pid, "", false, ActorRefs.NoSender, "writer");

    protected void Write(params AtomicWrite[] writes)
    {
        Journal.Tell(new WriteMessages(writes, TestActor, 1));
        ExpectMsg<WriteMessagesSuccessful>(Wait);
        foreach (var w in writes)
            foreach (var _ in (IImmutableList<IPersistentRepresentation>)w.Payload)
                ExpectMsg<WriteMessageSuccess>(Wait);
    }

    private (List<IPersistentRepresentation> Events, long Highest) Replay(long from = 1, long to = long.MaxValue, long max = long.MaxValue)
    {
        Journal.Tell(new ReplayMessages(from, to, max, pid, TestActor));
        var events = new List<IPersistentRepresentation>();
        while (true)
        {
            var m = ExpectMsg<object>(Wait);
            if (m is ReplayedMessage r) events.Add(r.Persistent);
            else if (m is RecoverySuccess s) return (events, s.HighestSequenceNr);
            else throw new Xunit.Sdk.XunitException($"unexpected {m}");
        }
    }

    private static long[] Seqs(List<IPersistentRepresentation> events) => [.. events.Select(e => e.SequenceNr)];

    [Fact]
    public void Events_replay_in_order_with_their_payloads_and_within_the_asked_range()
    {
        Write(new AtomicWrite(Event(pid, 1, new EventsProcessed(11))),
            new AtomicWrite(ImmutableList.Create<IPersistentRepresentation>(Event(pid, 2, new ContainerForgotten("a", 22)), Event(pid, 3, new EventsProcessed(33)))));
        Write(new AtomicWrite(Event("other-" + pid, 1, new EventsProcessed(99))));

        var (all, highest) = Replay();
        Assert.Equal([1L, 2, 3], Seqs(all));
        Assert.Equal(3, highest);
        Assert.Equal(new EventsProcessed(11), all[0].Payload);
        Assert.Equal(new ContainerForgotten("a", 22), all[1].Payload);
        Assert.All(all, e => Assert.Equal(pid, e.PersistenceId));

        Assert.Equal([2L], Seqs(Replay(from: 2, to: 2).Events));
        Assert.Equal([1L, 2], Seqs(Replay(max: 2).Events));
    }

    [Fact]
    public void A_write_that_cannot_be_serialized_is_rejected_alone_and_the_others_in_its_batch_are_stored()
    {
        Journal.Tell(new WriteMessages([
            new AtomicWrite(Event(pid, 1, new EventsProcessed(1))),
            new AtomicWrite(Event(pid, 2, new Unknown())),
            new AtomicWrite(Event(pid, 3, new EventsProcessed(3))),
        ], TestActor, 1));
        ExpectMsg<WriteMessagesSuccessful>(Wait);
        Assert.Equal(1, ExpectMsg<WriteMessageSuccess>(Wait).Persistent.SequenceNr);
        var rejected = ExpectMsg<WriteMessageRejected>(Wait);
        Assert.Equal(2, rejected.Persistent.SequenceNr);
        Assert.Contains("not a WhaleWall state type", rejected.Cause.Message);
        Assert.Equal(3, ExpectMsg<WriteMessageSuccess>(Wait).Persistent.SequenceNr);

        Assert.Equal([1L, 3], Seqs(Replay().Events));
    }

    [Fact]
    public void Deleting_every_event_keeps_the_highest_sequence_number_so_numbering_goes_on()
    {
        Write(new AtomicWrite(Event(pid, 1, new EventsProcessed(1))), new AtomicWrite(Event(pid, 2, new EventsProcessed(2))),
            new AtomicWrite(Event(pid, 3, new EventsProcessed(3))));

        Journal.Tell(new DeleteMessagesTo(pid, 2, TestActor));
        ExpectMsg<DeleteMessagesSuccess>(Wait);
        Assert.Equal([3L], Seqs(Replay().Events));

        Journal.Tell(new DeleteMessagesTo(pid, long.MaxValue, TestActor));
        ExpectMsg<DeleteMessagesSuccess>(Wait);
        var (none, highest) = Replay();
        Assert.Empty(none);
        Assert.Equal(3, highest);
    }

    [Fact]
    public void The_newest_snapshot_within_the_criteria_loads_and_deleting_by_criteria_removes_only_those()
    {
        var t0 = new DateTime(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);
        foreach (var seq in new long[] { 10, 20, 30 })
        {
            Snapshots.Tell(new SaveSnapshot(new SnapshotMetadata(pid, seq, t0.AddMinutes(seq)), ContainerStoreState.Empty with { LastEventNanos = seq }));
            ExpectMsg<SaveSnapshotSuccess>(Wait);
        }
        // the same sequence number again replaces it
        Snapshots.Tell(new SaveSnapshot(new SnapshotMetadata(pid, 30, t0.AddMinutes(30)), ContainerStoreState.Empty with { LastEventNanos = 31 }));
        ExpectMsg<SaveSnapshotSuccess>(Wait);

        SelectedSnapshot? Load(SnapshotSelectionCriteria criteria)
        {
            Snapshots.Tell(new LoadSnapshot(pid, criteria, long.MaxValue));
            return ExpectMsg<LoadSnapshotResult>(Wait).Snapshot;
        }

        var latest = Load(SnapshotSelectionCriteria.Latest)!;
        Assert.Equal(30, latest.Metadata.SequenceNr);
        Assert.Equal(t0.AddMinutes(30), latest.Metadata.Timestamp);
        Assert.Equal(31, ((ContainerStoreState)latest.Snapshot).LastEventNanos);
        Assert.Equal(20, Load(new SnapshotSelectionCriteria(25))!.Metadata.SequenceNr);
        Assert.Equal(10, Load(new SnapshotSelectionCriteria(long.MaxValue, t0.AddMinutes(15)))!.Metadata.SequenceNr);
        Assert.Null(Load(new SnapshotSelectionCriteria(5)));

        Snapshots.Tell(new DeleteSnapshots(pid, new SnapshotSelectionCriteria(20)));
        ExpectMsg<DeleteSnapshotsSuccess>(Wait);
        Assert.Null(Load(new SnapshotSelectionCriteria(25)));
        Assert.Equal(30, Load(SnapshotSelectionCriteria.Latest)!.Metadata.SequenceNr);

        Snapshots.Tell(new DeleteSnapshot(new SnapshotMetadata(pid, 30, DateTime.MinValue)));
        ExpectMsg<DeleteSnapshotSuccess>(Wait);
        Assert.Null(Load(SnapshotSelectionCriteria.Latest));
    }
}

public sealed class SqliteSqlJournalSpecs : SqlJournalSpecs
{
    private readonly StateOptions options;

    public SqliteSqlJournalSpecs(ITestOutputHelper output)
        : this(new StateOptions("sqlite", Path.Combine(Path.GetTempPath(), "ww-journal-" + Guid.NewGuid().ToString("N")[..8]), "unused"), output) { }

    private SqliteSqlJournalSpecs(StateOptions options, ITestOutputHelper output) : base(options, output) => this.options = options;

    /// <summary>One fsync per commit (the rollback journal took several, each on a thread of the
    /// pool: SQLite's asynchronous calls run synchronously).</summary>
    [Fact]
    public void The_database_commits_through_a_write_ahead_log()
    {
        Write(new AtomicWrite(Event("wal", 1, new EventsProcessed(1))));
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={options.SqliteFile};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)command.ExecuteScalar());
    }
}

public sealed class PostgresSqlJournalSpecs(PostgresFixture pg, ITestOutputHelper output)
    : SqlJournalSpecs(new StateOptions(pg.Server.ConnectionString, Path.GetTempPath(), "unused"), output), IClassFixture<PostgresFixture>;
