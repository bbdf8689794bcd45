using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using Akka.Pattern;
using Akka.Persistence;
using WhaleWall.Actors.Health;
using static WhaleWall.Actors.State.ContainerStoreCommands;
using static WhaleWall.Actors.State.ContainerStoreEvents;

namespace WhaleWall.Actors.State;

/// <summary>The node's memory: journals the facts of every container WhaleWall enforces, so a
/// restart rebuilds the table from them before Docker has said anything. One per node
/// (persistence id <c>containers-{node}</c>), so nodes sharing a database never read each
/// other's state. Snapshot every <see cref="SnapshotEvery"/> events; older events and
/// snapshots are deleted once a snapshot is saved.</summary>
public sealed class ContainerStoreActor : ReceivePersistentActor
{
    public const int SnapshotEvery = 500;

    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly TimeProvider clock;
    private readonly WriteHealth writes;
    private ContainerStoreState state = ContainerStoreState.Empty;
    private int replayed;

    public override string PersistenceId { get; }

    public ContainerStoreActor(string node, TimeProvider clock, WriteHealth? writes = null)
    {
        PersistenceId = PersistenceIdFor(node);
        this.clock = clock;
        this.writes = writes ?? new WriteHealth();

        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is ContainerStoreState s) state = s;
        });
        Recover<IStoredEvent>(e =>
        {
            state = state.Apply(e);
            replayed++;
        });
        Recover<RecoveryCompleted>(_ =>
        {
            log.Info("state {0}: {1} containers recovered ({2} events after the snapshot)", PersistenceId, state.Containers.Count, replayed);
            // reads work again; whether writes do only a write can tell (a snapshot of what was just read)
            if (this.writes.Failing) SaveSnapshot(state); else Health(null);
        });

        Command<Record>(r => Handle(r, () => Sender.Tell(new Recorded(r.Facts.Id, r.Ticket))));
        Command<RecordNetworks>(n => Handle(n, () => { }));
        Command<Forget>(f => Handle(f, () => { }));
        Command<Checkpoint>(c => Handle(c, () => { }));
        Command<GetState>(_ => Sender.Tell(new Snapshot(state, LastSequenceNr)));
        Command<Clear>(c =>
        {
            var count = state.Containers.Count;
            var replyTo = Sender;
            Handle(c, () =>
            {
                DeleteMessages(LastSequenceNr);
                DeleteSnapshots(new SnapshotSelectionCriteria(long.MaxValue));
                replyTo.Tell(new Cleared(count));
            });
        });
        Command<SaveSnapshotSuccess>(s =>
        {
            WritesWork();
            DeleteMessages(s.Metadata.SequenceNr);
            DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
        });
        Command<SaveSnapshotFailure>(f =>
        {
            log.Warning("snapshot failed: {0}", f.Cause.Message);
            if (this.writes.Failing) Health("cannot write state: " + f.Cause.Message);
        });
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => log.Warning("deleting old events failed: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => log.Warning("deleting old snapshots failed: {0}", f.Cause.Message));
    }

    public static string PersistenceIdFor(string node) => $"containers-{node}";

    public static Props Props(string node, TimeProvider? clock = null, WriteHealth? writes = null) =>
        Akka.Actor.Props.Create(() => new ContainerStoreActor(node, clock ?? TimeProvider.System, writes ?? new WriteHealth()));

    /// <summary>The store behind a backoff supervisor: a database that fails makes the store
    /// stop, and it comes back (recovering again) after 1 s, 2 s, ... 30 s. The incarnations
    /// share one <see cref="WriteHealth"/>.</summary>
    public static Props Supervised(string node, TimeProvider? clock = null) =>
        BackoffSupervisor.Props(Backoff.OnStop(Props(node, clock, new WriteHealth()), "store", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, -1));

    /// <summary>Health for `/healthz` (<see cref="HealthNotices.Components.Store"/>): a problem
    /// when reading or writing fails, cleared once reading works and writing is not known to
    /// fail. `/healthz` turns 503 when it lasts longer than the store's grace.</summary>
    private void Health(string? problem) =>
        Context.System.EventStream.Publish(new HealthNotices.ComponentHealth(HealthNotices.Components.Store, problem));

    private void WritesWork()
    {
        if (!writes.Failing) return;
        writes.Failing = false;
        Health(null);
    }

    /// <summary>Whether the last write failed, kept across the incarnations the backoff supervisor
    /// creates (one at a time): a store that restarted and read its journal has not shown that
    /// it can write.</summary>
    public sealed class WriteHealth
    {
        private volatile bool failing;

        public bool Failing
        {
            get => failing;
            set => failing = value;
        }
    }

    private void Handle(object command, Action done)
    {
        var events = state.Decide(command, clock.GetUtcNow().ToUnixTimeMilliseconds());
        if (events.IsEmpty)
        {
            done();
            return;
        }
        var left = events.Length;
        PersistAll(events, e =>
        {
            WritesWork();
            state = state.Apply(e);
            if (LastSequenceNr % SnapshotEvery == 0) SaveSnapshot(state);
            if (--left == 0) done();
        });
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        log.Error("cannot write state ({0}); the store restarts with backoff, rules in the kernel are unaffected", cause.Message);
        writes.Failing = true;
        Health("cannot write state: " + cause.Message);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        log.Error("cannot read state ({0}); retrying with backoff", reason.Message);
        Health("cannot read state: " + reason.Message);
        base.OnRecoveryFailure(reason, message);
    }
}

/// <summary>Registry key of the node's <see cref="ContainerStoreActor"/>.</summary>
public sealed class ContainerStore { }

public static class ContainerStoreActorExtensions
{
    public static AkkaConfigurationBuilder AddContainerStoreActor(this AkkaConfigurationBuilder builder, StateOptions options) =>
        builder
            .AddHocon(PersistenceConfig.Config(options), HoconAddMode.Prepend)
            .WithActors((system, registry) =>
                registry.Register<ContainerStore>(system.ActorOf(ContainerStoreActor.Supervised(options.Node), "state")));
}
