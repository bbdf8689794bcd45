using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Health;
using WhaleWall.Actors.Nft;

namespace WhaleWall.Actors.Metrics;

/// <summary>Follows the event stream (containers' states, components' health, the writer's
/// start-up table, the Docker stream) and keeps the <see cref="DaemonView"/>, the state gauges
/// and the daemon's report file (<see cref="IDaemonReport"/>) up to date. The report is written
/// at most once per <see cref="ReportEvery"/> when something changed, and at least every
/// <see cref="ReportHeartbeat"/> (its time stamp says the daemon is alive).</summary>
public sealed class MetricsActor : ReceiveActor, IWithTimers
{
    public static readonly TimeSpan ReportEvery = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan ReportHeartbeat = TimeSpan.FromSeconds(5);

    private static readonly ContainerState[] Gauged =
        [ContainerState.Unmanaged, ContainerState.Enforced, ContainerState.FailClosed, ContainerState.Rejected, ContainerState.Unfilterable];

    private readonly DaemonView view;
    private readonly IDaemonReport? report;
    private readonly TimeProvider clock;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly ContainerTally tally = new();
    private bool dirty = true;
    private DateTimeOffset lastWritten = DateTimeOffset.MinValue;
    private string? reportError;

    public ITimerScheduler Timers { get; set; } = null!;

    public MetricsActor(DaemonView view, IDaemonReport? report = null, TimeProvider? clock = null)
    {
        this.view = view;
        this.report = report;
        this.clock = clock ?? TimeProvider.System;
        Receive<ContainerNotices.StateChanged>(OnStateChanged);
        Receive<HealthNotices.ComponentHealth>(m =>
        {
            var before = view.Current.Components.GetValueOrDefault(m.Component)?.Problem;
            view.Apply(m, this.clock.GetUtcNow());
            WhaleWallMetrics.ComponentProblem.WithLabels(m.Component).Set(m.Problem is null ? 0 : 1);
            if (before != m.Problem)
            {
                if (m.Problem is null) log.Info("health: {0} is fine again", m.Component);
                else log.Warning("health: {0}: {1}", m.Component, Firewall.Decide.Decision.Escape(m.Problem));
            }
            Changed();
        });
        Receive<NftWriterEvents.TableReady>(_ =>
        {
            view.Update(s => s with { TableReady = true });
            WhaleWallMetrics.TableReady.Set(1);
            Changed();
        });
        Receive<DockerEventsEvents.StreamStateChanged>(m =>
        {
            view.Update(s => s with { DockerConnected = m.Connected, DockerError = m.Reason });
            WhaleWallMetrics.DockerConnected.Set(m.Connected ? 1 : 0);
            Changed();
        });
        Receive<Tick>(_ => OnTick());
    }

    public static Props Props(DaemonView view, IDaemonReport? report = null, TimeProvider? clock = null) =>
        Akka.Actor.Props.Create(() => new MetricsActor(view, report, clock));

    /// <summary>Starts the actor and subscribes it at once (not in PreStart, which runs later):
    /// nothing published after this returns is missed.</summary>
    public static IActorRef Start(ActorSystem system, DaemonView view, string name = "metrics", IDaemonReport? report = null,
        TimeProvider? clock = null)
    {
        var actor = system.ActorOf(Props(view, report, clock), name);
        system.EventStream.Subscribe(actor, typeof(ContainerNotices.StateChanged));
        system.EventStream.Subscribe(actor, typeof(HealthNotices.ComponentHealth));
        system.EventStream.Subscribe(actor, typeof(NftWriterEvents.TableReady));
        system.EventStream.Subscribe(actor, typeof(DockerEventsEvents.StreamStateChanged));
        return actor;
    }

    protected override void PreStart()
    {
        foreach (var state in Gauged) WhaleWallMetrics.Containers.WithLabels(WhaleWallMetrics.StateLabel(state)).Set(0);
        WhaleWallMetrics.ManagedContainers.Set(0);
        WhaleWallMetrics.DockerConnected.Set(0);
        WhaleWallMetrics.TableReady.Set(0);
        WhaleWallMetrics.Healthy.Set(0);
        Timers.StartPeriodicTimer("tick", Tick.Instance, ReportEvery);
    }

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    private void Changed() => dirty = true;

    /// <summary>The gauges follow the change by its difference (this actor is the only one that
    /// applies container states to the view): counting all containers again at every change cost
    /// a sixth of the daemon's CPU with 1,000 containers churning.</summary>
    private void OnStateChanged(ContainerNotices.StateChanged m)
    {
        var old = view.Current.Containers.GetValueOrDefault(m.Id);
        view.Apply(m);
        tally.Remove(old);
        tally.Add(view.Current.Containers.GetValueOrDefault(m.Id));
        foreach (var state in Gauged)
            WhaleWallMetrics.Containers.WithLabels(WhaleWallMetrics.StateLabel(state)).Set(tally.In(state));
        WhaleWallMetrics.ManagedContainers.Set(tally.Managed);
        WhaleWallMetrics.AuditContainers.Set(tally.Audited);
        Changed();
    }

    /// <summary>Once a second: health gauge (graces expire with time alone), and the report when
    /// it changed or is due.</summary>
    private void OnTick()
    {
        var now = clock.GetUtcNow();
        var snapshot = view.Current;
        WhaleWallMetrics.Healthy.Set(snapshot.Health(now).Healthy ? 1 : 0);
        if (report is null || (!dirty && now - lastWritten < ReportHeartbeat)) return;
        try
        {
            report.Write(snapshot, now);
            dirty = false;
            lastWritten = now;
            if (reportError is not null) log.Info("status report written again");
            reportError = null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (reportError is null) log.Warning("cannot write the status report ({0}); `whalewall status` shows the journal instead", e.Message);
            reportError = e.Message;
        }
    }

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }
}

public sealed class MetricsView { }

public static class MetricsActorExtensions
{
    /// <summary>Registered before the other actors, so it hears their first notices.</summary>
    public static AkkaConfigurationBuilder AddMetricsActor(this AkkaConfigurationBuilder builder, DaemonView view, IDaemonReport? report = null) =>
        builder.WithActors((system, registry) =>
            registry.Register<MetricsView>(MetricsActor.Start(system, view, report: report)));
}
