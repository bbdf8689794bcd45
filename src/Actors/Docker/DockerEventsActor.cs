using System.Collections.Immutable;
using Akka.Actor;
using System.Diagnostics;
using Akka.Event;
using WhaleWall.Actors.Metrics;
using Akka.Hosting;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Docker;

/// <summary>Lists the containers at start, then follows Docker's event stream and fans each
/// event out to the container's own <see cref="ContainerActor"/>. After a stream failure it
/// reconnects with <c>since=</c> the last event seen, and looks at every container again
/// (Docker forgets its event history when it restarts). With a store, start-up first enforces
/// what the journal remembers (even while Docker is unreachable; in deny-by-default mode with the
/// gateway networks as last journalled), then reconciles with Docker, and follows events from the
/// last checkpoint.</summary>
public sealed class DockerEventsActor : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StateGrace = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan CheckpointEvery = TimeSpan.FromSeconds(1);

    private readonly IDockerSource docker;
    private readonly GatewayConfig? gateway;
    private readonly Firewall.Decide.PolicyMode mode;
    private readonly IActorRef? hostnames;
    private readonly IActorRef writer;
    private readonly IActorRef peers;
    private readonly IActorRef? store;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> children = new();
    private long generation;
    private long lastEventNanos;

    /// <summary>When the current event stream was asked for (Unix ns): events older than that are replays.</summary>
    private long streamOpenedNanos = long.MaxValue;
    private long checkpointed;
    private bool recovering;
    private int failures;
    private bool started;
    private CancellationTokenSource? stream;
    private long gatewayVersion;
    private readonly ContainerServices? services;
    private ContainerStoreState? toSeed;          // the journal's containers, waiting for their ports to be checked
    private ImmutableHashSet<string>? replayed;   // the journal's containers, until the writer is told whom to expect

    public ITimerScheduler Timers { get; set; } = null!;

    public DockerEventsActor(IDockerSource docker, IActorRef writer, IActorRef peers, GatewayConfig? gateway = null,
        IActorRef? hostnames = null, IActorRef? store = null, ContainerServices? services = null, Firewall.Decide.PolicyMode mode = Firewall.Decide.PolicyMode.Enforce)
    {
        this.services = services;
        this.docker = docker;
        this.gateway = gateway;
        this.mode = mode;
        this.hostnames = hostnames;
        this.writer = writer;
        this.peers = peers;
        this.store = store;

        Receive<ContainerStoreEvents.Snapshot>(OnRecovered);
        Receive<Binding.BridgePortsEvents.PortsValidated>(v => Seed(v.Valid));
        Receive<PortsOverdue>(_ =>
        {
            if (toSeed is null) return;
            log.Warning("the journal's bridge ports could not be checked in time; they are looked up again");
            Seed(new HashSet<BoundPort>());
        });
        Receive<StateOverdue>(_ =>
        {
            if (!recovering) return;
            recovering = false;
            log.Error("state not readable within {0}; starting from Docker alone", StateGrace);
            Self.Tell(Connect.Instance);
        });
        Receive<CheckpointTick>(_ =>
        {
            if (lastEventNanos <= checkpointed) return;
            checkpointed = lastEventNanos;
            store?.Tell(new ContainerStoreCommands.Checkpoint(lastEventNanos));
        });

        Receive<ContainerCommands.ToContainer>(m =>
        {
            if (children.TryGetValue(m.Id, out var child)) child.Forward(m.Message);
            else if (m.Message is ContainerCommands.LearnAddresses) Sender.Tell(new ContainerEvents.Learned("no such container"));
        });
        Receive<Connect>(_ => ListContainers());
        Receive<Listed>(OnListed);
        Receive<ListFailed>(f =>
        {
            Expect(replayed, "Docker unreachable: the table is rebuilt from the journal");
            log.Error("cannot list containers ({0}); retrying", f.Error.Message);
            Timers.StartSingleTimer("connect", Connect.Instance, Backoff());
        });
        Receive<DockerEvent>(e =>
        {
            var received = Stopwatch.GetTimestamp();
            WhaleWallMetrics.DockerEvents.WithLabels(e.Type, WhaleWallMetrics.ActionLabel(e.Action)).Inc();
            if (e.TimeNano >= streamOpenedNanos) // what `since=` replays is as old as it is: only live events measure delivery
                WhaleWallMetrics.DockerEventDelay.Observe(Math.Max(0, UnixNanosNow() - e.TimeNano) * 1e-9);
            failures = 0;
            lastEventNanos = Math.Max(lastEventNanos, e.TimeNano);
            if (e.Type == "network" && e.Action is "create" or "destroy")
            {
                RefreshGatewayNetworks();
                return;
            }
            Child(e.ContainerId).Tell(new ContainerCommands.Refresh($"{e.Type} {e.Action}", e, received));
        });
        Receive<StreamEnded>(e =>
        {
            log.Warning("Docker event stream ended ({0}); reconnecting", e.Error?.Message ?? "closed");
            Context.System.EventStream.Publish(new DockerEventsEvents.StreamStateChanged(false, e.Error?.Message));
            Timers.StartSingleTimer("connect", Connect.Instance, Backoff());
        });
        Receive<NetworksListed>(n =>
        {
            writer.Tell(new NftWriterCommands.Program(Compiler.Gateways(n.Networks, gateway!), ++gatewayVersion));
            store?.Tell(new ContainerStoreCommands.RecordNetworks([.. n.Networks]));
        });
        Receive<NetworksFailed>(f =>
        {
            log.Warning("cannot list networks ({0}); retrying", f.Error.Message);
            Timers.StartSingleTimer("networks", new RefreshNetworks(), TimeSpan.FromSeconds(2));
        });
        Receive<RefreshNetworks>(_ => RefreshGatewayNetworks());
        Receive<NftWriterEvents.Applied>(_ => { });
        Receive<NftWriterEvents.Rejected>(r =>
            log.Error("kernel rejected the gateway networks ({0})", r.Error));
        Receive<ContainerEvents.Gone>(g =>
        {
            if (children.Remove(g.Id, out var child)) Context.Stop(child);
        });
        // a container's actor stopped otherwise (its supervisor gave up after repeated failures):
        // a fresh one asks Docker, instead of the container's events going to dead letters
        Receive<ChildStopped>(t =>
        {
            if (!children.TryGetValue(t.Id, out var child) || !child.Equals(t.Child)) return; // gone, or already replaced
            children.Remove(t.Id);
            log.Error("{0}: its actor stopped after repeated failures; starting a fresh one", t.Id[..Math.Min(12, t.Id.Length)]);
            Child(t.Id).Tell(new ContainerCommands.Refresh("its actor stopped after repeated failures"));
        });
    }

    public static Props Props(IDockerSource docker, IActorRef writer, IActorRef peers, GatewayConfig? gateway = null,
        IActorRef? hostnames = null, IActorRef? store = null, ContainerServices? services = null, Firewall.Decide.PolicyMode mode = Firewall.Decide.PolicyMode.Enforce) =>
        Akka.Actor.Props.Create(() => new DockerEventsActor(docker, writer, peers, gateway, hostnames, store, services, mode));

    protected override void PreStart()
    {
        if (store is null)
        {
            Self.Tell(Connect.Instance);
            return;
        }
        recovering = true;
        store.Tell(ContainerStoreCommands.GetState.Instance);
        Timers.StartSingleTimer("state", StateOverdue.Instance, StateGrace);
        Timers.StartPeriodicTimer("checkpoint", CheckpointTick.Instance, CheckpointEvery);
    }

    private void OnRecovered(ContainerStoreEvents.Snapshot snapshot)
    {
        if (!recovering) return;
        recovering = false;
        Timers.Cancel("state");
        var state = snapshot.State;
        lastEventNanos = checkpointed = state.LastEventNanos;
        if (!state.Containers.IsEmpty)
        {
            // the table is rebuilt in one transaction from the journal and, when Docker answers its
            // first listing, from every container it lists too: the journal may lack a container
            // the kernel held (the kernel goes first), and the old table stays until then. Docker
            // unreachable: from the journal alone, at once.
            started = true;
            replayed = state.Containers.Keys.ToImmutableHashSet();
            // deny-by-default: the gateway subnets come from the networks as last journalled; a
            // journal without them (older versions) waits for Docker's list (the old table stays
            // meanwhile) up to the writer's grace
            if (gateway is not null && !state.Networks.IsEmpty)
                writer.Tell(new NftWriterCommands.Program(Compiler.Gateways(state.Networks, gateway), ++gatewayVersion));
            // ports remembered in the journal are used only if still this boot's and still there
            var ports = state.Containers.Values.SelectMany(c => c.Facts.Networks.Where(n => n.Port is not null).Select(n => (c.Facts.Id, n.Port!)))
                .ToImmutableArray();
            toSeed = state;
            if (services?.BridgePorts is { } finder && !ports.IsEmpty)
            {
                finder.Tell(new Binding.BridgePortsCommands.ValidatePorts(ports));
                Timers.StartSingleTimer("ports", PortsOverdue.Instance, TimeSpan.FromSeconds(5));
                return;
            }
            Seed(services?.BridgePorts is null ? null : new HashSet<BoundPort>());
            return;
        }
        Self.Tell(Connect.Instance);
    }

    /// <summary>Seeds the journal's containers, keeping only the ports in <paramref name="valid"/>
    /// (null: keep all, binding is off), then connects to Docker.</summary>
    private void Seed(IReadOnlySet<BoundPort>? valid)
    {
        if (toSeed is not { } state) return;
        toSeed = null;
        Timers.Cancel("ports");
        foreach (var (id, stored) in state.Containers)
        {
            var facts = valid is null ? stored.Facts : stored.Facts with
            {
                Networks = [.. stored.Facts.Networks.Select(n => n.Port is { } p && !valid.Contains(p) ? n with { Port = null } : n)],
            };
            Child(id).Tell(new ContainerCommands.Seed(facts));
        }
        log.Info("replayed {0} containers from the journal; reconciling with Docker", state.Containers.Count);
        Self.Tell(Connect.Instance);
    }

    protected override void PostStop() => stream?.Cancel();

    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(10, TimeSpan.FromMinutes(1), _ => Directive.Restart);

    private void ListContainers()
    {
        // Events from just before the listing are replayed: nothing falls between the two.
        var since = lastEventNanos > 0 ? lastEventNanos : UnixNanosNow() - 1_000_000_000;
        docker.ListContainerIdsAsync(CancellationToken.None).PipeTo(Self,
            success: ids => new Listed(ids, since),
            failure: e => new ListFailed(e));
    }

    private void OnListed(Listed listed)
    {
        var ids = listed.Ids.ToImmutableHashSet();
        var reason = started ? "reconcile" : "start-up";
        if (replayed is { } journal) Expect(journal.Union(ids), $"found {ids.Count} containers; the table is rebuilt from them and the journal's {journal.Count}");
        if (!started)
        {
            started = true;
            writer.Tell(new NftWriterCommands.ExpectOwners(gateway is null ? ids : ids.Add(Compiler.GatewayOwner)));
            log.Info("found {0} containers", ids.Count);
        }
        RefreshGatewayNetworks();
        foreach (var id in ids.Union(children.Keys))
            Child(id).Tell(new ContainerCommands.Refresh(reason));
        log.Info("reconciling {0} containers with Docker", ids.Union(children.Keys).Count);
        StartStream(listed.Since);
    }

    /// <summary>Tells the writer, once, whom its start-up table waits for.</summary>
    private void Expect(ImmutableHashSet<string>? owners, string why)
    {
        if (owners is null || replayed is null) return;
        replayed = null;
        log.Info(why);
        writer.Tell(new NftWriterCommands.ExpectOwners(gateway is null ? owners : owners.Add(Compiler.GatewayOwner)));
    }

    private void StartStream(long since)
    {
        streamOpenedNanos = UnixNanosNow();
        stream?.Cancel();
        stream = new CancellationTokenSource();
        var self = Self;
        var token = stream.Token;
        _ = Task.Run(async () =>
        {
            try
            {
                await docker.StreamEventsAsync(since, e => self.Tell(e), token);
                self.Tell(new StreamEnded(null));
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested) { }
            catch (Exception e) { self.Tell(new StreamEnded(e)); }
        }, token);
        log.Info("following Docker events since {0}", DateTimeOffset.FromUnixTimeMilliseconds(since / 1_000_000));
        Context.System.EventStream.Publish(new DockerEventsEvents.StreamStateChanged(true, null));
    }

    private static long UnixNanosNow() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    private void RefreshGatewayNetworks()
    {
        if (gateway is null) return;
        docker.ListNetworksAsync(CancellationToken.None).PipeTo(Self,
            success: n => new NetworksListed(n),
            failure: e => new NetworksFailed(e));
    }

    private IActorRef Child(string id)
    {
        if (children.TryGetValue(id, out var child)) return child;
        child = Context.ActorOf(ContainerActor.Props(id, docker, writer, peers, new Firewall.Decide.DecisionContext(gateway) { Mode = mode }, hostnames, store, services), $"c-{id}-{generation++}");
        children[id] = child;
        Context.WatchWith(child, new ChildStopped(id, child));
        return child;
    }

    private TimeSpan Backoff()
    {
        failures++;
        return TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(failures, 10)) / 4));
    }

    private sealed class Connect
    {
        public static readonly Connect Instance = new();
    }

    private sealed class StateOverdue
    {
        public static readonly StateOverdue Instance = new();
    }

    private sealed class PortsOverdue
    {
        public static readonly PortsOverdue Instance = new();
    }

    private sealed class CheckpointTick
    {
        public static readonly CheckpointTick Instance = new();
    }

    private sealed record Listed(IReadOnlyList<string> Ids, long Since);

    private sealed record ListFailed(Exception Error);

    private sealed record StreamEnded(Exception? Error);

    private sealed record NetworksListed(IReadOnlyList<DockerNetwork> Networks);

    private sealed record NetworksFailed(Exception Error);

    private sealed record RefreshNetworks;

    /// <summary>A container's actor terminated (<see cref="Child"/> watches each).</summary>
    private sealed record ChildStopped(string Id, IActorRef Child);
}

public sealed class DockerEvents { }

public static class DockerEventsActorExtensions
{
    public static AkkaConfigurationBuilder AddDockerEventsActor(this AkkaConfigurationBuilder builder, IDockerSource docker,
        GatewayConfig? gateway = null, Firewall.Compile.BindingSettings? binding = null, IDnsProxyClients? dnsProxy = null,
        IReadOnlyDictionary<string, ImmutableDictionary<string, ImmutableDictionary<System.Net.IPAddress, DateTimeOffset>>>? restored = null,
        Firewall.Decide.PolicyMode mode = Firewall.Decide.PolicyMode.Enforce) =>
        builder.WithActors((system, registry) =>
        {
            var writer = registry.Get<NftWriter>();
            var peers = registry.Get<PeerDirectory>();
            registry.TryGet<Hostnames.Hostnames>(out var hostnames);
            var store = registry.TryGet<ContainerStore>(out var s) ? s : null;
            // the learned addresses are kept (and restored) only with the proxy on
            var learned = dnsProxy is not null && registry.TryGet<LearnedStore>(out var l) ? l : null;
            var services = registry.TryGet<Binding.BridgePortsRegistry>(out var ports) && binding is { Enabled: true }
                ? new ContainerServices(ports, binding) { Dns = dnsProxy, LearnedStore = learned, Restored = restored }
                : dnsProxy is null ? null : new ContainerServices(null, Firewall.Compile.BindingSettings.Off) { Dns = dnsProxy, LearnedStore = learned, Restored = restored };
            registry.Register<DockerEvents>(system.ActorOf(DockerEventsActor.Props(docker, writer, peers, gateway, hostnames, store, services, mode), "docker-events"));
        });
}
