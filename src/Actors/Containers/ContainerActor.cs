using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using WhaleWall.Actors.Binding;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Metrics;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Containers.ContainerInputs;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;
using static WhaleWall.Actors.Containers.PeerDirectoryCommands;

namespace WhaleWall.Actors.Containers;

/// <summary>One per container. Its lifecycle is the pure <see cref="ContainerLifecycle"/>: every
/// message goes through <see cref="ContainerLifecycle.Decide"/>, each resulting event is applied
/// and its effect performed here (ask Docker, tell the writer, the journal, the peer directory,
/// the hostname service, metrics; log; start timers). Nothing else is decided here, and what
/// goes into the kernel is decided by the writer alone.</summary>
public sealed class ContainerActor : ReceiveActor, IWithTimers
{
    private readonly string id;
    private readonly IDockerSource docker;
    private readonly IActorRef writer;
    private readonly IActorRef peers;
    private readonly IActorRef? hostnames;
    private readonly IActorRef? store;
    private readonly IActorRef? bridgePorts;
    private readonly IDnsProxyClients? dnsProxy;
    private readonly IActorRef? learnedStore;
    /// <summary>The addresses registered with the DNS proxy for this container.</summary>
    private readonly HashSet<System.Net.IPAddress> proxied = [];
    private readonly ILoggingAdapter log = Context.GetLogger();
    private ContainerLifecycle state;

    public ITimerScheduler Timers { get; set; } = null!;

    public ContainerActor(string id, IDockerSource docker, IActorRef writer, IActorRef peers, DecisionContext? context = null,
        IActorRef? hostnames = null, IActorRef? store = null, ContainerServices? services = null)
    {
        bridgePorts = services?.BridgePorts;
        this.id = id;
        this.docker = docker;
        this.writer = writer;
        this.peers = peers;
        this.hostnames = hostnames;
        this.store = store;
        dnsProxy = services?.Dns;
        learnedStore = services?.LearnedStore;
        state = ContainerLifecycle.New(id, new LifecycleContext((context ?? DecisionContext.Default) with { DnsProxy = dnsProxy is not null },
            store is not null, hostnames is not null)
        {
            Binding = bridgePorts is null ? BindingSettings.Off : services!.Binding,
        });
        // what the proxy taught this container (by its ID) before the daemon restarted: in its
        // first wish, so in the start-up transaction, with what is left of the timeouts
        if (dnsProxy is not null && services?.Restored?.GetValueOrDefault(id) is { } restored &&
            Firewall.Dns.LearnedMap.Alive(restored, DateTimeOffset.UtcNow) is { IsEmpty: false } alive)
        {
            state = state.Restore(alive);
            dnsProxy.Restore(id, alive);
        }
        ReceiveAny(Handle);
    }

    public static Props Props(string id, IDockerSource docker, IActorRef writer, IActorRef peers, DecisionContext? context = null,
        IActorRef? hostnames = null, IActorRef? store = null, ContainerServices? services = null) =>
        Akka.Actor.Props.Create(() => new ContainerActor(id, docker, writer, peers, context, hostnames, store, services));

    /// <summary>The lifecycle as it stands (for tests).</summary>
    public ContainerLifecycle Lifecycle => state;

    /// <summary>After an internal error the actor starts again knowing nothing (its state went with
    /// the failed instance) while the kernel keeps the last rules it was sent: Docker is asked at
    /// once, so the rules follow the facts again (a container gone meanwhile is removed).</summary>
    protected override void PostRestart(Exception reason)
    {
        base.PostRestart(reason);
        log.Error(reason, "{0}: restarted after an internal error; asking Docker again", Short);
        Self.Tell(new ContainerCommands.Refresh("restarted after an internal error"));
    }

    private void Handle(object message)
    {
        if (message is ContainerCommands.LearnAddresses learn) message = new LearnRequested(learn, Sender);
        if (message is EndpointFound { Error: { } error })
            log.Warning("{0}: its address could not be looked up at network connect ({1}); its rules wait for Docker's inspect", Short, error);
        foreach (var e in state.Decide(message, Context.System.Scheduler.Now))
        {
            var before = state;
            state = state.Apply(e);
            Perform(e, before);
        }
    }

    private string Short => state.Facts is { } f ? $"{f.Name} ({f.ShortId})" : id[..Math.Min(12, id.Length)];

    private void Perform(IContainerEvent e, ContainerLifecycle before)
    {
        switch (e)
        {
            // Docker's client is started off the actor's thread: what the same input sends the
            // writer (a death's removal) never waits behind a request being built and sent
            case InspectionStarted s:
                Task.Run(() => docker.InspectAsync(id, CancellationToken.None)).PipeTo(Self,
                    success: f => new Inspected(f, s.Number),
                    failure: x => new InspectFailed(x.Message));
                break;
            case InspectionFailed f:
                log.Warning("{0}: inspect failed ({1}); retrying in {2:0.#} s", Short, f.Error, f.RetryIn.TotalSeconds);
                Timers.StartSingleTimer("inspect", new ContainerCommands.Refresh("retry after inspect failure"), f.RetryIn);
                break;
            case EndpointLookupStarted l:
                Task.Run(() => docker.InspectEndpointAsync(l.NetworkId, id, l.SentAfter, CancellationToken.None)).PipeTo(Self,
                    success: a => new EndpointFound(a, l.InspectionsStarted, l.Losses),
                    failure: x => new EndpointFound(null, l.InspectionsStarted, l.Losses, x.Message));
                break;
            case Seeded or FactsLearned:
                peers.Tell(new Publish(id, state.Facts));
                break;
            case PolicyDecided d:
                LogDecision(d, before);
                break;
            case HostsWatched w:
                hostnames?.Tell(new HostnamesCommands.Subscribe(w.Names, state.Facts?.Name ?? id));
                break;
            case PeersWatched w:
                peers.Tell(new Watch(w.References, w.Project));
                break;
            case CompileChecked { Error: { } error }:
                log.Error("{0}: {1}", Short, error);
                break;
            case RecordRequested r:
                if (store is null) break;
                if (r.Attempt == 1) log.Warning("{0}: the journal did not confirm its facts; asking again", Short);
                store.Tell(new ContainerStoreCommands.Record(r.Facts, r.Errors, r.Ticket));
                Timers.StartSingleTimer("record", new RetryRecord(r.Ticket), r.AskAgainIn);
                break;
            case RecordConfirmed:
                Timers.Cancel("record");
                break;
            case PortLookupStarted p:
                bridgePorts?.Tell(new BridgePortsCommands.FindPort(id, p.NetworkId, p.Bridge, p.Mac));
                break;
            case PortLookupEnded { Problem: not null } p:
                Timers.StartSingleTimer("port-" + p.NetworkId, new RetryPort(p.NetworkId), p.RetryIn);
                break;
            case FragmentSent s:
                SyncProxy(s.Fragment);   // registered before its dnsproxy element can reach the kernel
                writer.Tell(new NftWriterCommands.Program(s.Fragment, s.Version));
                break;
            case AddressesLearned l:
                learnedStore?.Tell(new LearnedStoreCommands.Record(id, l.Learned));
                break;
            case LearnAnswered a:
                a.ReplyTo.Tell(new ContainerEvents.Learned(a.Error));
                break;
            case KernelConfirmed k:
                if (k.InFlightSince != 0) WhaleWallMetrics.EventToEnforced.Observe(Stopwatch.GetElapsedTime(k.InFlightSince).TotalSeconds);
                if (before.Kernel.Error is not null) log.Info("{0}: the kernel took its rules", Short);
                break;
            case KernelRefused r:
                if (before.Kernel.Error != r.Error)
                    log.Error("{0}: kernel rejected its rules ({1}); container is drop-all until the writer's retry succeeds", Short, r.Error);
                break;
            case StatePublished p:
                Context.System.EventStream.Publish(new ContainerNotices.StateChanged(id, p.Facts, p.State, p.Reasons) { Mode = p.Mode, Learn = p.Learn });
                break;
            case ContainerGone:
                log.Info("{0}: container removed; removing its rules", Short);
                store?.Tell(new ContainerStoreCommands.Forget(id));
                peers.Tell(new Publish(id, null));
                if (!state.WatchedHosts.IsEmpty) hostnames?.Tell(new HostnamesCommands.Subscribe([], state.Facts?.Name ?? id));
                bridgePorts?.Tell(new BridgePortsCommands.Release(id));
                SyncProxy(Fragment.Empty(id));
                dnsProxy?.Forget(id);
                if (!state.Learned.IsEmpty) learnedStore?.Tell(new LearnedStoreCommands.Record(id, Firewall.Dns.LearnedMap.Empty));
                Context.System.EventStream.Publish(new ContainerNotices.StateChanged(id, null, ContainerState.Gone));
                Context.Parent.Tell(new ContainerEvents.Gone(id));
                break;
        }
    }

    /// <summary>The proxy's directory follows the container's <c>dnsproxy*</c> elements: each one
    /// registered (again: its DNS policy may have changed) with the current policy and
    /// resolvers, each address no longer proxied unregistered (its queries are then refused:
    /// fail closed, whatever the kernel still redirects).</summary>
    private void SyncProxy(Fragment fragment)
    {
        if (dnsProxy is null) return;
        var wanted = fragment.Elements
            .Where(e => e.Set is DnsProxyLayout.Set4 or DnsProxyLayout.Set6)
            .Select(e => Addresses.ToAddress(e.Fields[0].Kind == FieldKind.Ipv4 ? IpFamily.V4 : IpFamily.V6, e.Fields[0].Lo))
            .ToHashSet();
        foreach (var gone in proxied.Where(a => !wanted.Contains(a)).ToList())
        {
            dnsProxy.Unregister(id, gone);
            proxied.Remove(gone);
        }
        if (state.Decision.Dns is not { } policy || state.Facts is not { } facts) return;
        foreach (var address in wanted)
        {
            dnsProxy.Register(id, address, policy, facts.DnsServersOrEmpty);
            proxied.Add(address);
        }
    }

    /// <summary>A decision is logged when it changes what the container gets, not at every event.</summary>
    private void LogDecision(PolicyDecided d, ContainerLifecycle before)
    {
        var sameKind = before.Decision.Policy.GetType() == d.Decision.Policy.GetType();
        var reasons = d.Decision.Reasons();
        var sameReasons = before.Decision.Reasons().SequenceEqual(reasons);
        switch (d.Decision.Policy)
        {
            case PolicyDecision.FailClosed f when !sameKind || !sameReasons:
                log.Error("{0}: invalid labels, container is drop-all: {1}", Short,
                    string.Join("; ", f.Errors.Select(e => Decision.Escape(e.ToString()))));
                WhaleWallMetrics.LabelErrors.Inc(Math.Max(1, f.Errors.Length));
                break;
            case PolicyDecision.Enforced e when !sameKind || !d.Inputs.SameLabels(before.DecidedFor):
                log.Info("{0}: opted in with {1} output rules", Short, e.Policy.Output.Length);
                break;
        }
        // once, when it becomes unfilterable (a later inspection may add reasons: status shows them all)
        if (d.Decision.UnfilterableWarning(Short) is { } warning && before.Decision.Outcome != Outcome.Unfilterable)
            log.Warning("{0}", warning);
    }
}

/// <summary>The node-wide services a container's actor may use besides the writer, the journal,
/// the peer directory and the hostname service (each optional: tests leave them out).</summary>
/// <param name="BridgePorts">finds its ports on the bridges (<see cref="BridgePortsActor"/>); binding is off without it.</param>
/// <param name="Binding">how containers are bound (strict or lenient guards).</param>
public sealed record ContainerServices(IActorRef? BridgePorts, BindingSettings Binding)
{
    /// <summary>The DNS proxy's directory; null: the proxy is off.</summary>
    public IDnsProxyClients? Dns { get; init; }

    /// <summary>Keeps the learned addresses across restarts (<see cref="LearnedStoreActor"/>); null: not kept.</summary>
    public IActorRef? LearnedStore { get; init; }

    /// <summary>Learned addresses read at start-up, by container ID (<c>learned.json</c>).</summary>
    public IReadOnlyDictionary<string, System.Collections.Immutable.ImmutableDictionary<string,
        System.Collections.Immutable.ImmutableDictionary<System.Net.IPAddress, DateTimeOffset>>>? Restored { get; init; }
}
