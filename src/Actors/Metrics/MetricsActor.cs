using Akka.Actor;
using Akka.Hosting;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Nft;

namespace WhaleWall.Actors.Metrics;

/// <summary>Follows the event stream (containers' states, the writer's start-up table, the
/// Docker stream) and keeps the <see cref="DaemonView"/> and the state gauges up to date.</summary>
public sealed class MetricsActor : ReceiveActor
{
    private static readonly ContainerState[] Gauged =
        [ContainerState.Unmanaged, ContainerState.Enforced, ContainerState.FailClosed, ContainerState.Rejected];

    private readonly DaemonView view;

    public MetricsActor(DaemonView view)
    {
        this.view = view;
        Receive<ContainerNotices.StateChanged>(OnStateChanged);
        Receive<NftWriterEvents.TableReady>(_ =>
        {
            view.Update(s => s with { TableReady = true });
            WhaleWallMetrics.TableReady.Set(1);
        });
        Receive<DockerEventsEvents.StreamStateChanged>(m =>
        {
            view.Update(s => s with { DockerConnected = m.Connected, DockerError = m.Reason });
            WhaleWallMetrics.DockerConnected.Set(m.Connected ? 1 : 0);
        });
    }

    public static Props Props(DaemonView view) => Akka.Actor.Props.Create(() => new MetricsActor(view));

    /// <summary>Starts the actor and subscribes it at once (not in PreStart, which runs later):
    /// nothing published after this returns is missed.</summary>
    public static IActorRef Start(ActorSystem system, DaemonView view, string name = "metrics")
    {
        var actor = system.ActorOf(Props(view), name);
        system.EventStream.Subscribe(actor, typeof(ContainerNotices.StateChanged));
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
    }

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    private void OnStateChanged(ContainerNotices.StateChanged m)
    {
        view.Apply(m);
        var all = view.Current.Containers.Values;
        foreach (var state in Gauged)
            WhaleWallMetrics.Containers.WithLabels(WhaleWallMetrics.StateLabel(state)).Set(all.Count(c => c.State == state));
        WhaleWallMetrics.ManagedContainers.Set(all.Count(c => c.State != ContainerState.Unmanaged));
    }
}

public sealed class MetricsView { }

public static class MetricsActorExtensions
{
    /// <summary>Registered before the other actors, so it hears their first notices.</summary>
    public static AkkaConfigurationBuilder AddMetricsActor(this AkkaConfigurationBuilder builder, DaemonView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<MetricsView>(MetricsActor.Start(system, view)));
}
