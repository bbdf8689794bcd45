using System.Collections.Immutable;
using Akka.Actor;
using System.Diagnostics;
using Akka.Event;
using WhaleWall.Actors.Metrics;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Containers.ContainerCommands;
using static WhaleWall.Actors.Containers.PeerDirectoryCommands;
using static WhaleWall.Actors.Containers.PeerDirectoryEvents;

namespace WhaleWall.Actors.Containers;

/// <summary>One per container: looks the container up in Docker, decides its policy from its
/// labels, compiles it with its addresses and the peers it names, and keeps the kernel in
/// step through the writer. Inspections run one at a time; events arriving meanwhile cause
/// exactly one more. With a store, new facts are journalled before the kernel hears of them:
/// a restart after `kill -9` rebuilds at least what the kernel held.</summary>
public sealed class ContainerActor : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);
    /// <summary>How long programming waits for the store: enforcing beats remembering.</summary>
    public static readonly TimeSpan RecordGrace = TimeSpan.FromSeconds(5);

    private readonly string id;
    private readonly IDockerSource docker;
    private readonly IActorRef writer;
    private readonly IActorRef peers;
    private readonly GatewayConfig? gateway;
    private readonly IActorRef? store;
    private readonly IActorRef? hostnames;
    private readonly Dictionary<string, HostAddresses> hostAddresses = new();
    private ImmutableHashSet<string> watchedHosts = ImmutableHashSet<string>.Empty;
    private readonly ILoggingAdapter log = Context.GetLogger();

    private ContainerFacts? facts;
    private PolicyDecision decision = new PolicyDecision.Unmanaged();
    private ImmutableArray<ContainerFacts> knownPeers = [];
    private ImmutableHashSet<string> watched = ImmutableHashSet<string>.Empty;
    private Fragment? lastSent;
    private long version;
    private bool inspecting;
    private long inspectionsStarted;
    private long newestInspectionDone;
    private bool dirty;
    private int failures;
    private string? compileError;
    private ContainerFacts? recordedFacts;
    private ContainerFacts? requestedFacts;
    private long tickets;
    private long awaitedTicket;
    private bool rejected;
    private long fallbackVersion = -1; // the drop-all Program sent after a rejection
    private long eventSince;     // receipt of the oldest event not yet reflected in a Program
    private long inFlightSince;  // ... of the events behind the Program in flight
    private (ContainerFacts? Facts, ContainerState State) published;

    public ITimerScheduler Timers { get; set; } = null!;

    public ContainerActor(string id, IDockerSource docker, IActorRef writer, IActorRef peers, GatewayConfig? gateway = null,
        IActorRef? hostnames = null, IActorRef? store = null)
    {
        this.gateway = gateway;
        this.hostnames = hostnames;
        this.id = id;
        this.docker = docker;
        this.writer = writer;
        this.peers = peers;
        this.store = store;

        Receive<Seed>(s =>
        {
            if (facts is not null) return;
            // recovered from the journal: enforce at once, Docker is asked afterwards
            facts = recordedFacts = requestedFacts = s.Facts;
            peers.Tell(new Publish(id, facts));
            Decide();
            Program();
        });
        Receive<ContainerStoreEvents.Recorded>(r =>
        {
            if (r.Ticket != awaitedTicket) return;
            Timers.Cancel("record");
            recordedFacts = requestedFacts;
            awaitedTicket = 0;
            Program();
        });
        Receive<RecordOverdue>(o =>
        {
            if (o.Ticket != awaitedTicket) return;
            log.Warning("{0}: state not written within {1}; programming the kernel anyway", Short, RecordGrace);
            recordedFacts = requestedFacts;
            awaitedTicket = 0;
            Program();
        });

        Receive<Refresh>(r =>
        {
            log.Debug("{0}: refresh ({1})", Short, r.Reason);
            if (r.ReceivedAt != 0 && eventSince == 0) eventSince = r.ReceivedAt;
            if (r.Event is { } e) FastPath(e);
            if (inspecting) dirty = true; else Inspect();
        });
        Receive<Inspected>(OnInspected);
        Receive<Attached>(OnAttached);
        Receive<InspectFailed>(f =>
        {
            inspecting = false;
            log.Warning("{0}: inspect failed ({1}); retrying", Short, f.Error.Message);
            Timers.StartSingleTimer("inspect", new Refresh("retry after inspect failure"), Backoff());
        });
        Receive<HostnamesEvents.AddressesChanged>(a =>
        {
            if (!watchedHosts.Contains(a.Host.Name)) return;
            hostAddresses[a.Host.Name] = a.Host;
            Program();
        });
        Receive<PeersChanged>(p =>
        {
            knownPeers = p.Peers;
            Program();
        });
        Receive<NftWriterEvents.Applied>(a =>
        {
            if (a.Version != version) return;
            failures = 0;
            log.Debug("{0}: {1} elements in the kernel", Short, lastSent?.Elements.Length ?? 0);
            if (inFlightSince != 0)
            {
                WhaleWallMetrics.EventToEnforced.Observe(Stopwatch.GetElapsedTime(inFlightSince).TotalSeconds);
                inFlightSince = 0;
            }
            if (rejected && a.Version != fallbackVersion)
            {
                rejected = false;
                Publish();
            }
        });
        Receive<NftWriterEvents.Rejected>(r =>
        {
            if (r.Version != version) return;
            // Fail closed: keep only the container's addresses under drop-all, try again later.
            var dropAll = (lastSent?.Elements ?? []).Where(e => NftSets.KeptWhenFailClosed(e.Set)).ToImmutableArray();
            log.Error("{0}: kernel rejected its rules ({1}); container is drop-all until retry", Short, r.Error);
            inFlightSince = 0;
            rejected = true;
            Publish();
            if (lastSent is not null && dropAll.Length != lastSent.Elements.Length)
            {
                SendToWriter(new Fragment(id, dropAll));
                fallbackVersion = version;
            }
            Timers.StartSingleTimer("reprogram", new Refresh("retry after kernel rejection"), Backoff());
        });
    }

    public static Props Props(string id, IDockerSource docker, IActorRef writer, IActorRef peers, GatewayConfig? gateway = null,
        IActorRef? hostnames = null, IActorRef? store = null) =>
        Akka.Actor.Props.Create(() => new ContainerActor(id, docker, writer, peers, gateway, hostnames, store));

    private string Short => facts is null ? id[..Math.Min(12, id.Length)] : $"{facts.Name} ({facts.ShortId})";

    private void Inspect()
    {
        inspecting = true;
        dirty = false;
        var number = ++inspectionsStarted;
        docker.InspectAsync(id, CancellationToken.None).PipeTo(Self,
            success: f => new Inspected(f, number),
            failure: e => new InspectFailed(e));
    }

    /// <summary>First-packet guarantee: Docker emits `network connect` before `start`, but
    /// holds the container's lock until the process runs, so a container inspect would only
    /// answer afterwards. The labels come with `create`, the address from the network: the
    /// rules are in the kernel before the container's first packet.</summary>
    private void FastPath(DockerEvent e)
    {
        if (e is { Type: "container", Action: "create", Attributes: { } attributes } && facts is null)
        {
            var labels = attributes.Where(a => a.Key is not ("name" or "image")).ToImmutableDictionary();
            facts = new ContainerFacts(id, attributes.GetValueOrDefault("name") ?? "", false, labels, [], []);
            Decide();
        }
        if (e is { Type: "network", Action: "connect", NetworkId: { } network } && (decision.IsManaged || gateway is not null))
        {
            var seen = inspectionsStarted;
            docker.InspectEndpointAsync(network, id, CancellationToken.None).PipeTo(Self,
                success: a => new Attached(a, seen),
                failure: _ => new Attached(null, seen));
        }
    }

    private void OnAttached(Attached message)
    {
        // An inspection started after the request knows better (the container may be gone already).
        if (message.Attachment is not { } attachment || newestInspectionDone > message.InspectionsStarted || facts is null) return;
        facts = facts with
        {
            Running = true,
            Networks = [.. facts.Networks.Where(n => n.Id != attachment.Id), attachment],
        };
        log.Debug("{0}: attached to {1} ({2})", Short, attachment.Name, attachment.IPv4);
        if (gateway is not null) Decide();
        Program();
    }

    private void OnInspected(Inspected message)
    {
        inspecting = false;
        newestInspectionDone = message.Number;
        if (dirty) { Inspect(); return; }

        if (message.Facts is null)
        {
            log.Info("{0}: container removed; removing its rules", Short);
            SendToWriter(Fragment.Empty(id));
            store?.Tell(new ContainerStoreCommands.Forget(id));
            peers.Tell(new Publish(id, null));
            WatchHosts(ImmutableHashSet<string>.Empty);
            Context.System.EventStream.Publish(new ContainerNotices.StateChanged(id, null, ContainerState.Gone));
            Context.Parent.Tell(new ContainerEvents.Gone(id));
            return;
        }

        // the decision depends on the labels and, in deny-by-default mode, on the networks
        var changed = facts is null || !facts.Labels.SequenceEqual(message.Facts.Labels) ||
                      (gateway is not null && !facts.Networks.Select(n => n.Name).SequenceEqual(message.Facts.Networks.Select(n => n.Name)));
        facts = message.Facts;
        peers.Tell(new Publish(id, facts));
        if (changed) Decide();
        Program();
    }

    private void Decide()
    {
        decision = ContainerDecider.Decide(new DecisionContext(gateway), facts!).Policy;
        switch (decision)
        {
            case PolicyDecision.FailClosed f:
                log.Error("{0}: invalid labels, container is drop-all: {1}", Short, string.Join("; ", f.Errors));
                WhaleWallMetrics.LabelErrors.Inc(Math.Max(1, f.Errors.Length));
                break;
            case PolicyDecision.Enforced e:
                log.Info("{0}: opted in with {1} output rules", Short, e.Policy.Output.Length);
                break;
        }

        WatchHosts(decision.EffectivePolicy.Output.SelectMany(r => r.HostsOrEmpty).ToImmutableHashSet());

        var references = decision.EffectivePolicy.ContainerReferences.ToImmutableHashSet();
        if (!references.SetEquals(watched))
        {
            watched = references;
            knownPeers = [];
            peers.Tell(new Watch(references, facts.ComposeProject));
        }
    }

    private void Program()
    {
        if (facts is null) return;
        var result = Compiler.Compile(facts, decision, knownPeers, hostAddresses);
        if (result.Error != compileError && result.Error is not null)
            log.Error("{0}: {1}", Short, result.Error);
        compileError = result.Error;
        Publish();
        if (store is not null && (awaitedTicket != 0 || !FactsComparer.Same(recordedFacts, facts)))
        {
            // journal first, program when the store confirms (Recorded calls Program again)
            if (!FactsComparer.Same(requestedFacts, facts))
            {
                requestedFacts = facts;
                awaitedTicket = ++tickets;
                store.Tell(new ContainerStoreCommands.Record(facts, Errors(result.Error), awaitedTicket));
                Timers.StartSingleTimer("record", new RecordOverdue(awaitedTicket), RecordGrace);
            }
            return;
        }
        if (lastSent is not null && lastSent.Elements.SequenceEqual(result.Fragment.Elements))
        {
            eventSince = 0; // nothing to enforce for those events
            return;
        }
        SendToWriter(result.Fragment);
    }

    private ImmutableArray<string> Errors(string? compile)
    {
        var errors = decision is PolicyDecision.FailClosed f ? f.Errors.Select(e => e.ToString()).ToList() : [];
        if (compile is not null) errors.Add(compile);
        return [.. errors];
    }

    private void WatchHosts(ImmutableHashSet<string> names)
    {
        if (hostnames is null || names.SetEquals(watchedHosts)) return;
        watchedHosts = names;
        foreach (var gone in hostAddresses.Keys.Where(n => !names.Contains(n)).ToList()) hostAddresses.Remove(gone);
        hostnames.Tell(new HostnamesCommands.Subscribe(names, facts?.Name ?? id));
    }

    /// <summary>Tells metrics what this container is now (only when that changed).</summary>
    private void Publish()
    {
        if (facts is null) return;
        var state = decision switch
        {
            PolicyDecision.Unmanaged => ContainerState.Unmanaged,
            PolicyDecision.FailClosed => ContainerState.FailClosed,
            _ when compileError is not null => ContainerState.FailClosed,
            _ when rejected => ContainerState.Rejected,
            _ => ContainerState.Enforced,
        };
        if (ReferenceEquals(published.Facts, facts) && published.State == state) return;
        published = (facts, state);
        Context.System.EventStream.Publish(new ContainerNotices.StateChanged(id, facts, state));
    }

    private void SendToWriter(Fragment fragment)
    {
        if (eventSince != 0)
        {
            inFlightSince = inFlightSince == 0 ? eventSince : Math.Min(inFlightSince, eventSince);
            eventSince = 0;
        }
        lastSent = fragment;
        writer.Tell(new NftWriterCommands.Program(fragment, ++version));
    }

    private TimeSpan Backoff()
    {
        failures++;
        var seconds = Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Min(failures, 10)) / 2);
        return TimeSpan.FromSeconds(seconds);
    }

    private sealed record Inspected(ContainerFacts? Facts, long Number);

    private sealed record Attached(NetworkAttachment? Attachment, long InspectionsStarted);

    private sealed record InspectFailed(Exception Error);

    private sealed record RecordOverdue(long Ticket);
}
