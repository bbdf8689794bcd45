using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using Akka.Pattern;
using Akka.Persistence;
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
    private ContainerStoreState state = ContainerStoreState.Empty;
    private int replayed;

    public override string PersistenceId { get; }

    public ContainerStoreActor(string node, TimeProvider clock)
    {
        PersistenceId = PersistenceIdFor(node);
        this.clock = clock;

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
            log.Info("state {0}: {1} containers recovered ({2} events after the snapshot)", PersistenceId, state.Containers.Count, replayed));

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
            DeleteMessages(s.Metadata.SequenceNr);
            DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1));
        });
        Command<SaveSnapshotFailure>(f => log.Warning("snapshot failed: {0}", f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => log.Warning("deleting old events failed: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => log.Warning("deleting old snapshots failed: {0}", f.Cause.Message));
    }

    public static string PersistenceIdFor(string node) => $"containers-{node}";

    public static Props Props(string node, TimeProvider? clock = null) =>
        Akka.Actor.Props.Create(() => new ContainerStoreActor(node, clock ?? TimeProvider.System));

    /// <summary>The store behind a backoff supervisor: a database that fails makes the store
    /// stop, and it comes back (recovering again) after 1 s, 2 s, ... 30 s.</summary>
    public static Props Supervised(string node, TimeProvider? clock = null) =>
        BackoffSupervisor.Props(Backoff.OnStop(Props(node, clock), "store", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, -1));

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
            state = state.Apply(e);
            if (LastSequenceNr % SnapshotEvery == 0) SaveSnapshot(state);
            if (--left == 0) done();
        });
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        log.Error("cannot write state ({0}); the store restarts with backoff, rules in the kernel are unaffected", cause.Message);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        log.Error("cannot read state ({0}); retrying with backoff", reason.Message);
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
